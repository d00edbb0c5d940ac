#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// (user, item) pairs stored as an (n, 2) integer array in NumPy's `.npy` format, as DiffRec ships its splits.
///
/// The header is parsed, not skipped: the data offset, dtype, order and shape all come from it, because
/// `.npy` writers pad headers differently (DiffRec's files happen to use 128 bytes; NumPy now writes 64-byte
/// multiples) and a file saved with another dtype must be refused rather than misread.
enum NumpyPairs {
    private static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    static func decode(_ data: Data, path: String) throws -> (users: [Int32], items: [Int32]) {
        try data.withUnsafeBytes { try decode($0, path: path) }
    }

    private static func decode(_ raw: UnsafeRawBufferPointer, path: String) throws -> (users: [Int32], items: [Int32]) {
        func fail(_ offset: Int, _ message: String) -> DataError { .badNumpy(path: path, offset: offset, message: message) }
        guard raw.count > 0 else { throw DataError.emptyFile(path: path) }
        guard raw.count >= 10, raw.prefix(6).elementsEqual(magic) else {
            throw fail(0, "not a NumPy .npy file (it does not start with \\x93NUMPY)")
        }
        let major = raw[6], minor = raw[7]
        let headerStart: Int, headerLength: Int
        switch major {
        case 1:
            headerStart = 10
            headerLength = Int(raw[8]) | Int(raw[9]) << 8
        case 2, 3:
            guard raw.count >= 12 else { throw fail(raw.count, "the file ends inside the header length") }
            headerStart = 12
            headerLength = (0..<4).reduce(0) { $0 | Int(raw[8 + $1]) << (8 * $1) }
        default:
            throw fail(6, "unsupported .npy format version \(major).\(minor) (Refit reads versions 1 to 3)")
        }
        let dataStart = headerStart + headerLength
        guard dataStart <= raw.count else {
            throw fail(raw.count, "the file ends inside the header, which should run to byte \(dataStart)")
        }
        let headerText = String(decoding: raw[headerStart..<dataStart], as: UTF8.self)
        let header: [String: HeaderValue]
        do {
            var parser = HeaderParser(headerText)
            header = try parser.dictionary()
        } catch let error as HeaderParser.Failure {
            throw fail(headerStart + error.offset, "cannot parse the header \(headerText.trimmedHeader): \(error.message)")
        }

        guard case .string(let descr)? = header["descr"] else { throw fail(headerStart, "the header has no 'descr'") }
        let width: Int
        switch descr {
        case "<i8": width = 8
        case "<i4": width = 4
        default:
            throw fail(headerStart, "dtype '\(descr)' is not supported; expected little-endian integers '<i8' or '<i4'")
        }
        guard case .bool(let fortranOrder)? = header["fortran_order"] else {
            throw fail(headerStart, "the header has no 'fortran_order' True/False")
        }
        guard case .tuple(let shape)? = header["shape"], shape.count == 2, shape[1] == 2 else {
            throw fail(headerStart, "shape \(header["shape"].map { "\($0)" } ?? "missing") is not (n, 2): expected one (user, item) pair per row")
        }
        let rowCount = shape[0]
        let (byteCount, overflow) = rowCount.multipliedReportingOverflow(by: 2 * width)
        guard !overflow else { throw fail(headerStart, "shape (\(rowCount), 2) is impossibly large") }
        guard raw.count >= dataStart + byteCount else {
            throw fail(raw.count, "truncated: \(rowCount) rows need \(byteCount) bytes of data from byte \(dataStart), but the file ends at byte \(raw.count)")
        }
        guard raw.count == dataStart + byteCount else {
            throw fail(dataStart + byteCount, "\(raw.count - dataStart - byteCount) unexpected bytes after \(rowCount) rows of data")
        }

        // Element (row, column) sits at index row*2+column in C order, column*n+row in Fortran order.
        func offset(_ row: Int, _ column: Int) -> Int {
            dataStart + width * (fortranOrder ? column * rowCount + row : row * 2 + column)
        }
        func value(_ row: Int, _ column: Int, _ role: String) throws -> Int32 {
            let at = offset(row, column)
            let v = width == 8 ? Int64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int64.self))
                               : Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int32.self)))
            guard v >= 0 else { throw fail(at, "\(role) index \(v) in row \(row) is negative") }
            guard v < Int64(Int32.max) else { throw fail(at, "\(role) index \(v) in row \(row) is too large") }
            return Int32(v)
        }
        var users = [Int32](repeating: 0, count: rowCount), items = users
        for row in 0..<rowCount {
            users[row] = try value(row, 0, "user")
            items[row] = try value(row, 1, "item")
        }
        return (users, items)
    }

    /// An `<i8` (n, 2) C-order array in format version 1.0, header padded so the data start on a 64-byte
    /// boundary as NumPy itself writes.
    static func encode(users: some Collection<Int32>, items: some Collection<Int32>) -> Data {
        precondition(users.count == items.count)
        var header = "{'descr': '<i8', 'fortran_order': False, 'shape': (\(users.count), 2), }"
        let unpadded = magic.count + 4 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var bytes = magic + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)] + Array(header.utf8)
        bytes.reserveCapacity(bytes.count + 16 * users.count)
        for (u, i) in zip(users, items) {
            withUnsafeBytes(of: Int64(u).littleEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: Int64(i).littleEndian) { bytes.append(contentsOf: $0) }
        }
        return Data(bytes)
    }
}

private enum HeaderValue: CustomStringConvertible {
    case string(String), bool(Bool), int(Int), tuple([Int])

    var description: String {
        switch self {
        case .string(let s): "'\(s)'"
        case .bool(let b): b ? "True" : "False"
        case .int(let i): String(i)
        case .tuple(let t): t.count == 1 ? "(\(t[0]),)" : "(" + t.map(String.init).joined(separator: ", ") + ")"
        }
    }
}

/// The Python literal NumPy writes as the header: a dict of strings, booleans and tuples of integers.
private struct HeaderParser {
    struct Failure: Error { var offset: Int; var message: String }
    let bytes: [UInt8]
    var i = 0

    init(_ text: String) { bytes = Array(text.utf8) }

    mutating func dictionary() throws -> [String: HeaderValue] {
        try expect("{")
        var result: [String: HeaderValue] = [:]
        while true {
            skipBlanks()
            if peek == UInt8(ascii: "}") { i += 1; break }
            guard case .string(let key) = try value() else { throw Failure(offset: i, message: "a key is not a string") }
            try expect(":")
            result[key] = try value()
            skipBlanks()
            if peek == UInt8(ascii: ",") { i += 1 } else { try expect("}"); break }
        }
        return result
    }

    private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    private mutating func skipBlanks() { while let b = peek, b == 32 || b == 10 || b == 9 { i += 1 } }

    private mutating func expect(_ character: Character) throws {
        skipBlanks()
        guard peek == character.asciiValue else { throw Failure(offset: i, message: "expected '\(character)'") }
        i += 1
    }

    private mutating func value() throws -> HeaderValue {
        skipBlanks()
        guard let b = peek else { throw Failure(offset: i, message: "unexpected end") }
        switch b {
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            let start = i + 1
            guard let end = bytes[start...].firstIndex(of: b) else { throw Failure(offset: i, message: "unterminated string") }
            i = end + 1
            return .string(String(decoding: bytes[start..<end], as: UTF8.self))
        case UInt8(ascii: "("):
            i += 1
            var items: [Int] = []
            while true {
                skipBlanks()
                if peek == UInt8(ascii: ")") { i += 1; break }
                guard case .int(let n) = try value() else { throw Failure(offset: i, message: "a shape entry is not an integer") }
                items.append(n)
                skipBlanks()
                if peek == UInt8(ascii: ",") { i += 1 } else { try expect(")"); break }
            }
            return .tuple(items)
        default:
            let start = i
            while let c = peek, c == UInt8(ascii: "_") || (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) { i += 1 }
            let word = String(decoding: bytes[start..<i], as: UTF8.self)
            if word == "True" { return .bool(true) }
            if word == "False" { return .bool(false) }
            if let n = Int(word), n >= 0 { return .int(n) }
            throw Failure(offset: start, message: word.isEmpty ? "unexpected character" : "unexpected '\(word)'")
        }
    }
}

private extension String {
    /// The header as shown in messages: without NumPy's padding.
    var trimmedHeader: String { String(reversed().drop { $0 == " " || $0 == "\n" }.reversed()) }
}
