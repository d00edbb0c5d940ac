/// A checksum of Int32 arrays (their little-endian bytes), in 16 hex digits: equal fingerprints mean identical data
/// (splits, sequences). A run stores its data's fingerprint so that resuming, evaluating and fine-tuning notice when
/// the file changed.
enum Fingerprint {
    static func of(_ arrays: [[Int32]]) -> String {
        var checksum = Checksum()
        for array in arrays { checksum.add(contentsOf: array.map { $0.littleEndian }) }
        return checksum.hex
    }
}
