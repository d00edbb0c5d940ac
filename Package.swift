// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Refit",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "refit", targets: ["refit"]),
        .library(name: "Refit", targets: ["Refit"]),
        .library(name: "RefitCompute", targets: ["RefitCompute"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenCL",
            pkgConfig: "OpenCL",
            providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers", "pocl-opencl-icd"])]
        ),
        // Turns Kernels/*.cl into Swift string constants at build time, so a binary needs no resource folder.
        .executableTarget(name: "EmbedKernels", path: "Sources/EmbedKernels"),
        .plugin(
            name: "KernelEmbedder",
            capability: .buildTool(),
            dependencies: ["EmbedKernels"],
            path: "Plugins/KernelEmbedder"
        ),
        // Records the git commit for `refit --version`.
        .plugin(name: "BuildInfo", capability: .buildTool(), path: "Plugins/BuildInfo"),
        .target(
            name: "RefitCompute",
            dependencies: ["COpenCL"],
            plugins: ["KernelEmbedder"]
        ),
        .target(name: "Refit", dependencies: ["RefitCompute"]),
        .executableTarget(
            name: "refit",
            dependencies: ["Refit", "RefitCompute", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            plugins: ["BuildInfo"]
        ),
        .testTarget(name: "RefitComputeTests", dependencies: ["RefitCompute"]),
        .testTarget(name: "RefitTests", dependencies: ["Refit", "RefitCompute"]),
        // The command line parsed in-process: flags into settings, refusals, presets.
        .testTarget(name: "RefitCLITests", dependencies: ["refit", "Refit"]),
    ],
    swiftLanguageModes: [.v6]
)
