/// The version written into every run's `config.json`.
public enum RefitVersion {
    public static let string = "0.2.0"
}
