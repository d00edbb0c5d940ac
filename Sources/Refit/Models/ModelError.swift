/// A model that cannot be built as asked: too large for its closed form, or numerically unfit.
public enum ModelError: Error, CustomStringConvertible {
    case unsupported(String)

    public var description: String {
        switch self {
        case .unsupported(let message): message
        }
    }
}
