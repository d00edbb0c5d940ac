#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How a delimited text file is laid out. Every text format Refit reads is one preset of this.
struct TextLayout: Sendable {
    /// The field separator; nil detects it from the first line (tab, `::`, comma, semicolon, `|`, space).
    var separator: String?
    /// Whether the first line names the columns; nil detects it.
    var hasHeader: Bool?
    /// Where user, item, rating and time are; nil finds them by header name, else (no header, or names Refit
    /// does not recognise) by position: user 0, item 1, rating 2 and time 3 when the lines have those fields.
    var columns: ColumnMapping?
    /// The exact number of fields a line must have, when the format fixes it; otherwise the first line's count.
    var fieldCount: Int?

    static let movieLensDat = TextLayout(separator: "::", hasHeader: false,
                                         columns: ColumnMapping(user: .index(0), item: .index(1), rating: .index(2), time: .index(3)),
                                         fieldCount: 4)
    static let movieLensCSV = TextLayout(separator: ",", hasHeader: true,
                                         columns: ColumnMapping(user: .name("userId"), item: .name("movieId"),
                                                                rating: .name("rating"), time: .name("timestamp")))
    static let recbole = TextLayout(separator: "\t", hasHeader: true)
}

/// Parses delimited text straight from the file's bytes.
///
/// Files reach millions of lines, so lines are never materialised as Strings: fields are byte ranges,
/// numbers are parsed in place, and only ids seen for the first time become Strings.
/// Quoted fields are unquoted, but a separator inside quotes is not supported (rating logs do not need it).
enum DelimitedTextReader {
    static func read(_ data: Data, path: String, layout: TextLayout, format: DataFormat) throws -> InteractionLog {
        try data.withUnsafeBytes { raw in
            try read(raw.bindMemory(to: UInt8.self), path: path, layout: layout, format: format)
        }
    }

    private static func read(_ bytes: UnsafeBufferPointer<UInt8>, path: String, layout: TextLayout,
                             format: DataFormat) throws -> InteractionLog {
        var lines = LineCursor(bytes: bytes)
        guard let first = lines.next() else { throw DataError.emptyFile(path: path) }
        let firstText = String(decoding: UnsafeBufferPointer(rebasing: bytes[first.range]), as: UTF8.self)
        let separator = Array((layout.separator ?? detectSeparator(firstText)).utf8)
        let separatorName = separator == [9] ? "tabs" : "'\(String(decoding: separator, as: UTF8.self))'"

        var fields: [Range<Int>] = []
        split(bytes, first.range, separator, into: &fields)
        let firstFields = fields.map { text(bytes, $0) }
        let hasHeader: Bool
        if let given = layout.hasHeader {
            hasHeader = given
        } else if layout.columns?.namesColumns == true {
            hasHeader = true
        } else {
            var peek = lines
            var secondFields: [String]? = nil
            if let second = peek.next() {
                split(bytes, second.range, separator, into: &fields)
                secondFields = fields.map { text(bytes, $0) }
            }
            hasHeader = looksLikeHeader(firstFields, secondFields)
        }
        let fieldCount = layout.fieldCount ?? firstFields.count
        let columns = try resolveColumns(layout.columns, header: hasHeader ? firstFields : nil, fieldCount: fieldCount,
                                         path: path, line: first.number)
        if !hasHeader { lines = LineCursor(bytes: bytes) }

        var users: [Int32] = [], items: [Int32] = []
        var ratings: [Float] = [], timestamps: [Double] = []
        var userIDs = IDMap(), itemIDs = IDMap()
        let estimate = bytes.count / 16
        users.reserveCapacity(estimate)
        items.reserveCapacity(estimate)
        if columns.rating != nil { ratings.reserveCapacity(estimate) }
        if columns.time != nil { timestamps.reserveCapacity(estimate) }

        while let line = lines.next() {
            split(bytes, line.range, separator, into: &fields)
            guard fields.count == fieldCount else {
                throw DataError.badLine(path: path, line: line.number,
                                        message: "expected \(fieldCount) fields separated by \(separatorName), found \(fields.count)")
            }
            if fields[columns.user].isEmpty || fields[columns.item].isEmpty {
                let (name, column) = fields[columns.user].isEmpty ? ("user", columns.user) : ("item", columns.item)
                throw DataError.badLine(path: path, line: line.number, message: "empty \(name) id in column \(column)")
            }
            users.append(userIDs.index(of: UnsafeBufferPointer(rebasing: bytes[fields[columns.user]])))
            items.append(itemIDs.index(of: UnsafeBufferPointer(rebasing: bytes[fields[columns.item]])))
            if let column = columns.rating {
                guard let value = parseNumber(bytes, fields[column]) else {
                    throw DataError.badLine(path: path, line: line.number,
                                            message: "rating '\(text(bytes, fields[column]))' in column \(column) is not a number")
                }
                ratings.append(Float(value))
            }
            if let column = columns.time {
                guard let value = parseNumber(bytes, fields[column]) else {
                    throw DataError.badLine(path: path, line: line.number,
                                            message: "timestamp '\(text(bytes, fields[column]))' in column \(column) is not a number")
                }
                timestamps.append(value)
            }
        }
        if users.isEmpty { throw DataError.headerOnly(path: path) }
        return InteractionLog(users: users, items: items,
                              ratings: columns.rating == nil ? nil : ratings,
                              timestamps: columns.time == nil ? nil : timestamps,
                              userIDs: userIDs.ids, itemIDs: itemIDs.ids, source: path, format: format)
    }

    // MARK: Layout detection

    static func detectSeparator(_ line: String) -> String {
        for candidate in ["\t", "::", ",", ";", "|"] where line.contains(candidate) { return candidate }
        return " "
    }

    /// Column names Refit recognises without a column mapping, best first.
    private static let knownNames: [(role: String, names: [String])] = [
        ("user", ["user_id", "userid", "user", "uid", "user_idx", "userindex"]),
        ("item", ["item_id", "itemid", "item", "iid", "item_idx", "movie_id", "movieid", "movie", "itemindex"]),
        ("rating", ["rating", "ratings", "score", "rate"]),
        ("time", ["timestamp", "time", "ts", "unixtime", "unix_time", "datetime"]),
    ]

    /// Lowercased, without RecBole's `:type` suffix.
    private static func normalised(_ name: String) -> String {
        String(name.lowercased().split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)[0])
    }

    /// A header names columns; data rows hold ids and numbers. The first line is a header when one of its
    /// fields is a known column name, or is not a number where the next line has a number.
    static func looksLikeHeader(_ first: [String], _ second: [String]?) -> Bool {
        let known = Set(knownNames.flatMap(\.names))
        if first.contains(where: { known.contains(normalised($0)) }) { return true }
        guard let second, second.count == first.count else { return false }
        return zip(first, second).contains { Double($0) == nil && Double($1) != nil }
    }

    private struct ResolvedColumns {
        var user: Int, item: Int, rating: Int?, time: Int?
    }

    private static func resolveColumns(_ mapping: ColumnMapping?, header: [String]?, fieldCount: Int,
                                       path: String, line: Int) throws -> ResolvedColumns {
        func find(_ column: ColumnMapping.Column, _ role: String) throws -> Int {
            switch column {
            case .index(let i):
                guard i < fieldCount else {
                    throw DataError.badLine(path: path, line: line,
                                            message: "--columns asks for column \(i) as the \(role), but lines have \(fieldCount) fields (columns count from 0)")
                }
                return i
            case .name(let name):
                guard let header else {
                    throw DataError.badFile(path: path, message: "--columns names column '\(name)', but the file has no header")
                }
                guard let i = header.firstIndex(where: { $0.lowercased() == name.lowercased() || normalised($0) == normalised(name) }) else {
                    throw DataError.badLine(path: path, line: line,
                                            message: "no column named '\(name)' in the header (\(header.joined(separator: ", ")))")
                }
                return i
            }
        }
        if let mapping {
            return try ResolvedColumns(user: find(mapping.user, "user"), item: find(mapping.item, "item"),
                                       rating: mapping.rating.map { try find($0, "rating") },
                                       time: mapping.time.map { try find($0, "time") })
        }
        if let header {
            let names = header.map(normalised)
            func lookup(_ role: String) -> Int? {
                knownNames.first { $0.role == role }!.names.lazy.compactMap { names.firstIndex(of: $0) }.first
            }
            switch (lookup("user"), lookup("item")) {
            case (let user?, let item?):
                return ResolvedColumns(user: user, item: item, rating: lookup("rating"), time: lookup("time"))
            case (nil, nil):
                break  // names Refit does not know: fall back to positions, as without a header
            default:
                throw DataError.badLine(path: path, line: line,
                                        message: "cannot tell the user and item columns from the header (\(header.joined(separator: ", "))); name them with --columns user=NAME,item=NAME")
            }
        }
        guard fieldCount >= 2 else {
            throw DataError.badLine(path: path, line: line, message: "found 1 field; a line needs at least a user and an item (is --separator right?)")
        }
        // Without names, position decides: user, item, then rating, then time.
        return ResolvedColumns(user: 0, item: 1, rating: fieldCount >= 3 ? 2 : nil, time: fieldCount >= 4 ? 3 : nil)
    }

    // MARK: Bytes

    private static func text(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// Splits one line into field ranges, trimmed of blanks and surrounding quotes. A space separator
    /// treats a run of blanks as one, for column-aligned files.
    private static func split(_ bytes: UnsafeBufferPointer<UInt8>, _ line: Range<Int>, _ separator: [UInt8],
                              into fields: inout [Range<Int>]) {
        fields.removeAll(keepingCapacity: true)
        let collapse = separator == [UInt8(ascii: " ")]
        var start = line.lowerBound, i = line.lowerBound
        let end = line.upperBound, first = separator[0]
        func push(_ range: Range<Int>) {
            var low = range.lowerBound, high = range.upperBound
            while low < high, bytes[low] == 32 || bytes[low] == 9 { low += 1 }
            while high > low, bytes[high - 1] == 32 || bytes[high - 1] == 9 { high -= 1 }
            if high - low >= 2, bytes[low] == 34, bytes[high - 1] == 34 { low += 1; high -= 1 }
            if !(collapse && low == high) { fields.append(low..<high) }
        }
        while i < end {
            if bytes[i] == first, i + separator.count <= end,
               separator.count == 1 || (1..<separator.count).allSatisfy({ bytes[i + $0] == separator[$0] }) {
                push(start..<i)
                i += separator.count
                start = i
            } else {
                i += 1
            }
        }
        push(start..<end)
    }

    /// A decimal number, parsed in place. Plain decimals take the exact fast path (a mantissa below 2^53
    /// divided by an exact power of ten is correctly rounded); anything else goes through `Double(String)`.
    static func parseNumber(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Double? {
        var i = range.lowerBound
        let end = range.upperBound
        var negative = false
        if i < end, bytes[i] == 45 || bytes[i] == 43 { negative = bytes[i] == 45; i += 1 }
        var mantissa: UInt64 = 0, digits = 0, scale = 0, seenPoint = false
        while i < end {
            let b = bytes[i]
            if b >= 48 && b <= 57 {
                mantissa = mantissa &* 10 &+ UInt64(b - 48)
                digits += 1
                if seenPoint { scale += 1 }
            } else if b == 46 && !seenPoint {
                seenPoint = true
            } else {
                break
            }
            i += 1
        }
        if i == end, digits > 0, digits <= 15, scale < powersOfTen.count {
            let value = Double(mantissa) / powersOfTen[scale]
            return negative ? -value : value
        }
        guard let value = Double(text(bytes, range)), value.isFinite else { return nil }
        return value
    }

    private static let powersOfTen: [Double] = (0...22).map { p in (0..<p).reduce(1.0) { r, _ in r * 10 } }
}

/// Non-blank lines of a byte buffer with their 1-based line numbers; a UTF-8 byte-order mark is skipped.
private struct LineCursor {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0
    var number = 0

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { position = 3 }
    }

    struct Line {
        var range: Range<Int>
        var number: Int
    }

    mutating func next() -> Line? {
        while position < bytes.count {
            let start = position
            var end = start
            while end < bytes.count, bytes[end] != 10 { end += 1 }
            position = end + 1
            number += 1
            // Only the carriage return is cut: a trailing tab may end an empty last field.
            let trimmed = end > start && bytes[end - 1] == 13 ? end - 1 : end
            if (start..<trimmed).contains(where: { bytes[$0] != 32 && bytes[$0] != 9 }) { return Line(range: start..<trimmed, number: number) }
        }
        return nil
    }
}

/// Raw id → dense index, in order of first appearance.
///
/// Most rating files use small decimal ids, which are looked up in a flat table instead of hashing a String
/// per row. Only canonical decimals (no sign, no leading zero) take that path, so "007" and "7" stay distinct.
private struct IDMap {
    private static let tableLimit = 1 << 22
    private var byNumber: [Int32] = []
    private var byText: [String: Int32] = [:]
    private(set) var ids: [String] = []

    mutating func index(of bytes: UnsafeBufferPointer<UInt8>) -> Int32 {
        if let number = Self.smallNumber(bytes) {
            if number < byNumber.count, byNumber[number] >= 0 { return byNumber[number] }
            if number >= byNumber.count {
                byNumber += repeatElement(-1, count: min(Self.tableLimit, max(number + 1, 2 * byNumber.count)) - byNumber.count)
            }
            byNumber[number] = append(bytes)
            return byNumber[number]
        }
        let id = String(decoding: bytes, as: UTF8.self)
        if let known = byText[id] { return known }
        let index = append(bytes)
        byText[id] = index
        return index
    }

    private mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32 {
        ids.append(String(decoding: bytes, as: UTF8.self))
        return Int32(ids.count - 1)
    }

    private static func smallNumber(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 7, bytes[0] != 48 || bytes.count == 1 else { return nil }
        var value = 0
        for b in bytes {
            guard b >= 48 && b <= 57 else { return nil }
            value = value * 10 + Int(b - 48)
        }
        return value < tableLimit ? value : nil
    }
}
