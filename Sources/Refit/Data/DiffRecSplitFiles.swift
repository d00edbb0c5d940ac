#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// DiffRec's split folder: `train_list.npy`, `valid_list.npy`, `test_list.npy`, each an (n, 2) array of
/// 0-based (user, item) pairs. `refit data split` adds `user_ids.tsv` and `item_ids.tsv` (index, raw id),
/// which the reader uses when present so raw ids survive the round trip.
public enum DiffRecSplitFiles {
    public static let fileNames: [(DataSplit, String)] = [(.train, "train_list.npy"), (.valid, "valid_list.npy"), (.test, "test_list.npy")]

    /// The pairs of all three files, in train, valid, test order, each tagged with its split.
    /// Indices are used as they are: there are max index + 1 users and items.
    public static func read(folder: String) throws -> InteractionLog {
        var users: [Int32] = [], items: [Int32] = [], splits: [DataSplit] = []
        for (split, name) in fileNames {
            let path = DataFiles.join(folder, name)
            guard FileManager.default.fileExists(atPath: path) else { throw DataError.missingSplit(folder: folder, file: name) }
            let pairs = try NumpyPairs.decode(DataFiles.read(path), path: path)
            users += pairs.users
            items += pairs.items
            splits += repeatElement(split, count: pairs.users.count)
        }
        let userCount = Int(users.max().map { $0 + 1 } ?? 0)
        let itemCount = Int(items.max().map { $0 + 1 } ?? 0)
        // DiffRec's indices are dense; a stray huge index would make every per-user array enormous.
        let limit = 4 * users.count + 1_000_000
        for (role, count) in [("user", userCount), ("item", itemCount)] where count > limit {
            throw DataError.badFile(path: folder, message: "\(role) index \(count - 1) is far beyond the \(users.count) pairs; DiffRec indices are dense and 0-based")
        }
        return InteractionLog(users: users, items: items, splits: splits,
                              userIDs: try idMap(DataFiles.join(folder, "user_ids.tsv"), count: userCount),
                              itemIDs: try idMap(DataFiles.join(folder, "item_ids.tsv"), count: itemCount),
                              source: folder, format: .diffrec)
    }

    /// Writes the dataset's splits and id maps into a new folder at `folder`, atomically: everything goes
    /// into a temporary folder beside it, which is then renamed. An existing folder is replaced only with `force`.
    /// Writes the split into `folder`, whole or not at all. An existing folder is replaced only with `force` and only
    /// when it holds nothing but a split's files: a split is derived from its data, so the old one is not kept, but a
    /// folder holding anything else is never touched.
    public static func write(_ dataset: InteractionDataset, to folder: String, force: Bool) throws {
        let fm = FileManager.default
        let target = folder.hasSuffix("/") && folder.count > 1 ? String(folder.dropLast()) : folder
        if fm.fileExists(atPath: target) {
            guard force else { throw DataError.outputExists(path: target) }
            let ours = Set(fileNames.map(\.1) + ["user_ids.tsv", "item_ids.tsv"])
            let contents = (try? fm.contentsOfDirectory(atPath: target)) ?? ["?"]
            guard Set(contents).isSubset(of: ours) else {
                throw DataError.badOption("\(target) holds other files than a DiffRec split's (\(ours.sorted().joined(separator: ", "))); Refit replaces only its own splits")
            }
        }
        let suffix = "\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))"
        let temporary = target + ".partial-" + suffix
        do {
            try fm.createDirectory(atPath: temporary, withIntermediateDirectories: true)
            for (split, name) in fileNames {
                let matrix = dataset.matrix(split)
                var users: [Int32] = []
                users.reserveCapacity(matrix.nonzeroCount)
                for u in 0..<matrix.rowCount { users += repeatElement(Int32(u), count: matrix.rowLength(u)) }
                try NumpyPairs.encode(users: users, items: matrix.columns).write(to: URL(fileURLWithPath: DataFiles.join(temporary, name)))
            }
            try idMapText("user", dataset.userIDs).write(to: URL(fileURLWithPath: DataFiles.join(temporary, "user_ids.tsv")))
            try idMapText("item", dataset.itemIDs).write(to: URL(fileURLWithPath: DataFiles.join(temporary, "item_ids.tsv")))
            if fm.fileExists(atPath: target) {
                // rename(2) cannot replace a non-empty folder: move the old one aside, then remove it.
                let old = target + ".old-" + suffix
                try fm.moveItem(atPath: target, toPath: old)
                try fm.moveItem(atPath: temporary, toPath: target)
                try? fm.removeItem(atPath: old)
            } else {
                try fm.moveItem(atPath: temporary, toPath: target)
            }
        } catch {
            try? fm.removeItem(atPath: temporary)
            if let error = error as? DataError { throw error }
            throw DataError.writeFailed(path: target, reason: FileProblem.describe(error))
        }
    }

    private static func idMapText(_ role: String, _ ids: [String]) -> Data {
        var text = "\(role)_idx\t\(role)_id\n"
        for (index, id) in ids.enumerated() { text += "\(index)\t\(id)\n" }
        return Data(text.utf8)
    }

    /// Raw ids from an `index<TAB>id` file with a header, or the indices themselves when there is no such file.
    /// The file may name more ids than the pairs use (users or items left without interactions).
    static func idMap(_ path: String, count: Int) throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else { return (0..<count).map(String.init) }
        let lines = String(decoding: try DataFiles.read(path), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        var ids: [String?] = []
        for (number, line) in lines.enumerated().dropFirst() where !line.isEmpty {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 2, let index = Int(fields[0]), index >= 0, index < lines.count else {
                throw DataError.badLine(path: path, line: number + 1, message: "expected INDEX<TAB>ID with INDEX from 0 to the number of ids - 1")
            }
            if index >= ids.count { ids += repeatElement(nil, count: index + 1 - ids.count) }
            ids[index] = String(fields[1])
        }
        if ids.count < count { ids += repeatElement(nil, count: count - ids.count) }
        if let missing = ids.firstIndex(of: nil) {
            throw DataError.badFile(path: path, message: "no id for index \(missing), which the split files use")
        }
        return ids.map { $0! }
    }
}

/// File helpers shared by the readers and writers.
enum DataFiles {
    static func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }

    /// nil when nothing is there. Symbolic links are followed (listing a folder does, reading attributes does not).
    static func isDirectory(_ path: String) -> Bool? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return (try? FileManager.default.contentsOfDirectory(atPath: path)) != nil
    }

    static func read(_ path: String) throws -> Data {
        switch isDirectory(path) {
        case nil: throw DataError.missingFile(path: path)
        case true?: throw DataError.unreadableFile(path: path, reason: "it is a folder, not a file")
        case false?: break
        }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw DataError.unreadableFile(path: path, reason: "\(error)")
        }
    }
}
