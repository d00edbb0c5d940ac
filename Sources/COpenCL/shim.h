// The target version must be defined before the header: defines in cSettings do not reach Swift's view of it.
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
