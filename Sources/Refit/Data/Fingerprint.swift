/// FNV-1a 64 over Int32 arrays, in 16 hex digits: equal fingerprints mean identical data (splits, sequences).
/// A run stores its data's fingerprint so that resuming, evaluating and fine-tuning notice when the file changed.
enum Fingerprint {
    static func of(_ arrays: [[Int32]]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for array in arrays {
            for value in array {
                var v = UInt32(bitPattern: value)
                for _ in 0..<4 {
                    hash = (hash ^ UInt64(v & 0xFF)) &* 0x0000_0100_0000_01B3
                    v >>= 8
                }
            }
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
