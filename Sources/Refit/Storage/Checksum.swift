/// FNV-1a 64 over bytes, in 16 hex digits: it changes when any byte does (not a cryptographic hash). Checkpoints
/// carry one of their tensor data, and datasets' fingerprints are one of their arrays.
public struct Checksum: Sendable {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var hash = value
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        value = hash
    }

    public mutating func add<T>(contentsOf array: [T]) { array.withUnsafeBytes { add($0) } }

    public var hex: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
