/// Everything that can be wrong with a dataset on disk or with the options that select it.
///
/// Each case carries where the problem is (file and line, or byte offset for binary `.npy` files) so the
/// command line can print one line that lets the user fix the input without a debugger.
public enum DataError: Error, CustomStringConvertible, Equatable, Sendable {
    case missingFile(path: String)
    case unreadableFile(path: String, reason: String)
    case emptyFile(path: String)
    /// The file has a header line and nothing after it.
    case headerOnly(path: String)
    /// A problem in a text file; `line` is 1-based and counts the header.
    case badLine(path: String, line: Int, message: String)
    /// A problem in a binary `.npy` file at a byte offset from the start of the file.
    case badNumpy(path: String, offset: Int, message: String)
    case missingSplit(folder: String, file: String)
    /// A file that is readable but unusable as a whole (unknown column, no data rows of interest…).
    case badFile(path: String, message: String)
    case emptyDataset(source: String, reason: String)
    case badOption(String)
    case outputExists(path: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .missingFile(let path): "\(path): no such file or folder"
        case .unreadableFile(let path, let reason): "\(path): cannot read: \(reason)"
        case .emptyFile(let path): "\(path): the file is empty"
        case .headerOnly(let path): "\(path): the file has a header but no data rows"
        case .badLine(let path, let line, let message): "\(path):\(line): \(message)"
        case .badNumpy(let path, let offset, let message): "\(path): byte \(offset): \(message)"
        case .missingSplit(let folder, let file):
            "\(folder): DiffRec folder has no \(file) (it needs train_list.npy, valid_list.npy and test_list.npy)"
        case .badFile(let path, let message): "\(path): \(message)"
        case .emptyDataset(let source, let reason): "\(source): no interactions left \(reason)"
        case .badOption(let message): message
        case .outputExists(let path): "\(path) already exists; pass --force to replace it"
        case .writeFailed(let path, let reason): "\(path): cannot write: \(reason)"
        }
    }
}
