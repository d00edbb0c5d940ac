/// The kinds of input Refit reads. `auto` picks one from the path's name and the file's first line.
public enum DataFormat: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case auto
    /// MovieLens `ratings.dat`: `UserID::MovieID::Rating::Timestamp`, no header.
    case movieLensDat = "movielens-dat"
    /// MovieLens `ratings.csv`: header `userId,movieId,rating,timestamp`.
    case movieLensCSV = "movielens-csv"
    /// RecBole atomic `.inter` file: tab-separated, header fields `name:type`.
    case recbole
    /// DiffRec's folder of `train_list.npy`, `valid_list.npy`, `test_list.npy`.
    case diffrec
    /// Any delimited text file with user, item and optionally rating and time columns.
    case csv
    /// The synthetic dataset generated in code (`builtin:demo`).
    case builtin

    public var description: String { rawValue }

    /// The format of an existing file or folder, from its name and its first line.
    static func detect(path: String, isDirectory: Bool, firstLine: Substring) -> DataFormat {
        if isDirectory { return .diffrec }
        let name = path.split(separator: "/").last.map(String.init)?.lowercased() ?? ""
        let fields = firstLine.split(separator: "\t")
        let typeSuffixes = [":token", ":token_seq", ":float", ":float_seq"]
        if name.hasSuffix(".inter")
            || (!fields.isEmpty && fields.allSatisfy { f in typeSuffixes.contains { f.lowercased().hasSuffix($0) } }) {
            return .recbole
        }
        if firstLine.contains("::") { return .movieLensDat }
        let compact = firstLine.lowercased().filter { !$0.isWhitespace }
        if compact == "userid,movieid,rating,timestamp" { return .movieLensCSV }
        return .csv
    }
}

/// Which columns of a delimited file hold the user, the item, the rating and the time.
///
/// Written on the command line as `user=0,item=1,rating=2,time=3`: a number is a 0-based column index,
/// anything else a header name (case-insensitive; a RecBole `:type` suffix may be left off).
public struct ColumnMapping: Sendable, Equatable, CustomStringConvertible {
    public enum Column: Sendable, Equatable, CustomStringConvertible {
        case index(Int)
        case name(String)

        public var description: String {
            switch self {
            case .index(let i): String(i)
            case .name(let n): n
            }
        }
    }

    public var user: Column
    public var item: Column
    public var rating: Column?
    public var time: Column?

    public init(user: Column, item: Column, rating: Column? = nil, time: Column? = nil) {
        self.user = user
        self.item = item
        self.rating = rating
        self.time = time
    }

    public init(parsing spec: String) throws {
        var found: [String: Column] = [:]
        for part in spec.split(separator: ",", omittingEmptySubsequences: true) {
            let pieces = part.split(separator: "=", maxSplits: 1).map(\.trimmedWhitespace)
            guard pieces.count == 2, !pieces[1].isEmpty else {
                throw DataError.badOption("--columns: '\(part)' is not KEY=COLUMN (for example user=0,item=1,rating=2,time=3)")
            }
            var key = pieces[0].lowercased()
            if key == "timestamp" { key = "time" }
            guard ["user", "item", "rating", "time"].contains(key) else {
                throw DataError.badOption("--columns: unknown key '\(pieces[0])'; use user, item, rating and time")
            }
            guard found[key] == nil else { throw DataError.badOption("--columns: '\(key)' given twice") }
            found[key] = Int(pieces[1]).map { .index($0) } ?? .name(pieces[1])
            if case .index(let i) = found[key], i < 0 {
                throw DataError.badOption("--columns: column index \(i) is negative")
            }
        }
        guard let user = found["user"], let item = found["item"] else {
            throw DataError.badOption("--columns: needs at least user=… and item=… (for example user=0,item=1)")
        }
        self.init(user: user, item: item, rating: found["rating"], time: found["time"])
    }

    /// Whether any column is given by name, which implies a header line.
    var namesColumns: Bool {
        [user, item, rating, time].contains { if case .name? = $0 { true } else { false } }
    }

    public var description: String {
        var parts = ["user=\(user)", "item=\(item)"]
        if let rating { parts.append("rating=\(rating)") }
        if let time { parts.append("time=\(time)") }
        return parts.joined(separator: ",")
    }
}

private extension StringProtocol {
    var trimmedWhitespace: String { String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()) }
}
