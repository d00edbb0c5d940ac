import ArgumentParser
import Foundation
import Refit
import RefitCompute

struct RecommendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recommend",
        abstract: "Write each user's top-K items from a run's best checkpoint as a TSV (user, rank, item, score; raw ids); for SASRec/DreamRec runs, the next items after each user's sequence.")

    enum Exclusion: String, ExpressibleByArgument, CaseIterable {
        case train, trainValid = "train+valid", all
    }

    @OptionGroup(title: "Input") var input: RunInputOptions
    @Option(help: ArgumentHelp("all, or raw user ids separated by commas.", valueName: "ids"))
    var users: String = "all"
    @Option(parsing: .unconditional, help: "Recommendations per user.")
    var k: Int = 20
    @Option(help: "Items never recommended: train, train+valid (the test-time mask) or all (train+valid+test).")
    var exclude: Exclusion = .trainValid
    @Option(help: ArgumentHelp("The TSV file to write.", valueName: "file"))
    var out: String
    @Flag(inversion: .prefixedNo, help: "Replace an existing output file.")
    var force = false
    @OptionGroup(title: "Device") var device: DeviceOptions

    func run() throws {
        let checkpoint = try input.path
        guard k >= 1 else { throw ValidationError("--k must be at least 1") }
        if FileManager.default.fileExists(atPath: out) && !force {
            throw ValidationError("\(out) exists; pass --force to replace it")
        }
        let backend = try device.makeBackend()
        if RunFolder(checkpoint).isSequential { return try recommendNext(RunFolder(checkpoint), backend: backend) }
        let run = try TrainedRun(RunFolder(checkpoint), backend: backend)
        let dataset = run.dataset
        let selected = try selectedUsers(dataset.userIDs)
        let maskMatrix: CSRMatrix
        switch exclude {
        case .train: maskMatrix = dataset.train
        case .trainValid: maskMatrix = dataset.train.union(dataset.valid)
        case .all: maskMatrix = dataset.train.union(dataset.valid).union(dataset.test)
        }
        let mask = try DeviceCSR(maskMatrix, on: backend)
        let trainRows = try DeviceCSR(dataset.train, values: dataset.trainValues, on: backend)
        let k = min(self.k, dataset.itemCount)
        let batchSize = run.configuration.diffrec.batchSize
        var text = "user\trank\titem\tscore\n"
        for start in stride(from: 0, to: selected.count, by: batchSize) {
            let batch = Array(selected[start..<min(selected.count, start + batchSize)])
            let userTensor = try backend.tensor(batch.map { Int32($0) }, shape: [batch.count])
            let input = try backend.makeTensor([batch.count, dataset.itemCount], .float32)
            backend.densifyRows(trainRows, rows: userTensor, into: input)
            text += try Self.topRows(try run.model.scores(input), users: batch, userTensor: userTensor, mask: mask, k: k, backend: backend,
                                     userIDs: dataset.userIDs, itemIDs: dataset.itemIDs)
        }
        try AtomicFile.write(text, to: URL(fileURLWithPath: out))
        FileHandle.standardError.write(Data(Self.summary(text, k: k, users: selected.count, out: out).utf8))
    }

    /// What was written, counted from the file's rows: a user with fewer than k items left unmasked gets fewer.
    static func summary(_ text: String, k: Int, users: Int, out: String) -> String {
        let rows = text.reduce(0) { $0 + ($1 == "\n" ? 1 : 0) } - 1
        let short = rows < k * users ? "; fewer than \(k) for users with fewer items left unmasked" : ""
        return "wrote \(rows) recommendations to \(out): the top \(k) items of \(users) users\(short)\n"
    }

    /// The TSV lines of a batch: the top-k unmasked items of each user's scores, with raw ids.
    static func topRows(_ scores: Tensor, users: [Int], userTensor: Tensor, mask: DeviceCSR, k: Int, backend: any Backend,
                        userIDs: [String], itemIDs: [String]) throws -> String {
        let indices = try backend.makeTensor([users.count, k], .int32)
        let values = try backend.makeTensor([users.count, k], .float32)
        backend.topK(scores, k: k, mask: .sparse(mask, rows: userTensor), indices: indices, values: values)
        let top = try backend.readInt32s(indices), best = try backend.readFloats(values)
        var text = ""
        for (r, user) in users.enumerated() {
            for rank in 0..<k where top[r * k + rank] >= 0 {
                text += "\(userIDs[user])\t\(rank + 1)\t\(itemIDs[Int(top[r * k + rank])])\t\(best[r * k + rank])\n"
            }
        }
        return text
    }

    /// The user indices that `--users` names.
    func selectedUsers(_ userIDs: [String]) throws -> [Int] {
        guard users != "all" else { return Array(userIDs.indices) }
        let index = Dictionary(userIDs.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        return try users.split(separator: ",").map { raw in
            let id = raw.trimmingCharacters(in: .whitespaces)
            guard let u = index[id] else { throw ValidationError("user '\(id)' is not in the run's data") }
            return u
        }
    }

    /// SASRec/DreamRec runs: the items most likely to come next after each user's whole sequence (its last L
    /// items as history); every item the user already has is excluded, whatever `--exclude` says.
    func recommendNext(_ folder: RunFolder, backend: any Backend) throws {
        let run = try TrainedSequentialRun(folder, backend: backend)
        let dataset = run.dataset, l = run.configuration.sequential.historyLength
        let selected = try selectedUsers(dataset.userIDs)
        let mask = try DeviceCSR(CSRMatrix(columnCount: dataset.itemCount, rows: dataset.sequences.map { Array(Set($0)).sorted() }), on: backend)
        let k = min(self.k, dataset.itemCount)
        var text = "user\trank\titem\tscore\n"
        for (batchIndex, start) in stride(from: 0, to: selected.count, by: 512).enumerated() {
            let batch = Array(selected[start..<min(selected.count, start + 512)])
            let histories = batch.flatMap { dataset.history(user: $0, before: dataset.sequences[$0].count, length: l) }
            let scores = try run.model.scores(histories: histories, seed: 0x5245_434F ^ UInt64(batchIndex) << 32)
            let userTensor = try backend.tensor(batch.map { Int32($0) }, shape: [batch.count])
            text += try Self.topRows(scores, users: batch, userTensor: userTensor, mask: mask, k: k, backend: backend,
                                     userIDs: dataset.userIDs, itemIDs: dataset.itemIDs)
        }
        try AtomicFile.write(text, to: URL(fileURLWithPath: out))
        FileHandle.standardError.write(Data(Self.summary(text, k: k, users: selected.count, out: out).utf8))
    }
}
