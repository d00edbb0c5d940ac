#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Timestamps for a log read without them, joined on the (user, item) pair from a file that has them.
///
/// DiffRec's split folders hold pairs only, but its ML-1M clean split is MovieLens rows, chronological per user: joined
/// back to the ratings file, recency becomes information a model can use (T-DiffRec's time weights). The pairs are
/// matched by raw id: a folder's `id_map_users.tsv` and `id_map_items.tsv` (INDEX<TAB>ID, ids of the file joined)
/// when they are there, else the log's own ids (`user_ids.tsv`, `item_ids.tsv`, or the indices).
public enum TimestampJoin {
    public static let idMapNames = (users: "id_map_users.tsv", items: "id_map_items.tsv")

    public static func attach(from path: String, to log: InteractionLog, folder: String?) throws -> InteractionLog {
        if log.timestamps != nil {
            throw DataError.badOption("--timestamps \(path): \(log.source) has its own time column; --timestamps is for data without one")
        }
        let times = try DatasetLoader.readLog(path: path)
        guard let timestamps = times.timestamps else {
            throw DataError.badFile(path: path, message: "has no time column, so it cannot give --timestamps (name it with --columns time=NAME in the file's header)")
        }
        var userIDs = log.userIDs, itemIDs = log.itemIDs
        if let folder {
            let users = DataFiles.join(folder, idMapNames.users), items = DataFiles.join(folder, idMapNames.items)
            if FileManager.default.fileExists(atPath: users) { userIDs = try DiffRecSplitFiles.idMap(users, count: log.userCount) }
            if FileManager.default.fileExists(atPath: items) { itemIDs = try DiffRecSplitFiles.idMap(items, count: log.itemCount) }
        }
        // The time file's dense indices of each of the log's users and items (-1: absent there).
        func indices(_ ids: [String], in raw: [String]) -> [Int64] {
            let index = Dictionary(raw.enumerated().map { ($1, Int64($0)) }, uniquingKeysWith: { first, _ in first })
            return ids.map { index[$0] ?? -1 }
        }
        let userIndex = indices(userIDs, in: times.userIDs), itemIndex = indices(itemIDs, in: times.itemIDs)
        // A pair rated more than once keeps its earliest time.
        var time: [Int64: Double] = [:]
        time.reserveCapacity(times.count)
        for row in 0..<times.count {
            let key = Int64(times.users[row]) << 32 | Int64(times.items[row])
            time[key] = min(time[key] ?? .infinity, timestamps[row])
        }
        var joined = [Double](repeating: 0, count: log.count)
        var missing = 0, firstMissing: Int?
        for row in 0..<log.count {
            let u = userIndex[Int(log.users[row])], i = itemIndex[Int(log.items[row])]
            if u >= 0, i >= 0, let t = time[u << 32 | i] {
                joined[row] = t
            } else {
                missing += 1
                if firstMissing == nil { firstMissing = row }
            }
        }
        if let row = firstMissing {
            let maps = folder == nil ? "the data's own ids" : "the ids of \(idMapNames.users) and \(idMapNames.items) when the folder has them, else its own"
            throw DataError.badFile(path: path, message: "has no time for \(missing) of the \(log.count) pairs of \(log.source) (the first: user \(userIDs[Int(log.users[row])]), item \(itemIDs[Int(log.items[row])])); pairs are matched by \(maps)")
        }
        var result = log
        result.timestamps = joined
        return result
    }
}
