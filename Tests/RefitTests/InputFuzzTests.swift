import Foundation
import Testing
@testable import Refit

/// The input layer under mutation: small valid inputs of every format Refit reads, mutated thousands of times from a
/// fixed seed (truncations, bit flips, inserted and deleted bytes, huge numbers, invalid UTF-8, repeated lines). Every
/// load must either succeed or throw one of Refit's typed errors, never trap, and never write a file. A trap ends the
/// test process, which fails the run.
@Suite struct InputFuzzTests {
    static let seed: UInt64 = 20_261_202
    static let casesPerFormat = 600

    /// One mutation of `input`, chosen and placed by `random`.
    static func mutate(_ input: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var bytes = input
        func position(_ count: Int) -> Int { count == 0 ? 0 : Int(random.next() % UInt64(count)) }
        switch random.next() % 7 {
        case 0: bytes = Array(bytes.prefix(position(bytes.count + 1)))
        case 1: if !bytes.isEmpty { bytes[position(bytes.count)] ^= UInt8(1) << UInt8(random.next() % 8) }
        case 2: bytes.insert(contentsOf: (0..<(1 + random.next() % 8)).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: position(bytes.count + 1))
        case 3:
            // A number replaced by one far outside any range.
            let digits = bytes.indices.filter { (48...57).contains(bytes[$0]) }
            if let at = digits.isEmpty ? nil : digits[position(digits.count)] {
                bytes.replaceSubrange(at...at, with: Array(["99999999999999999999999", "-2147483649", "1e999", "nan", "-0"][position(5)].utf8))
            }
        case 4: bytes.insert(contentsOf: [0xFF, 0xFE, 0xC3], at: position(bytes.count + 1))
        case 5:
            let start = position(bytes.count + 1)
            bytes.removeSubrange(start..<min(bytes.count, start + 1 + position(16)))
        default:
            // A line repeated, or a line break lost.
            let breaks = bytes.indices.filter { bytes[$0] == 10 }
            if let at = breaks.isEmpty ? nil : breaks[position(breaks.count)] {
                if random.next() % 2 == 0 { bytes.remove(at: at) } else { bytes.insert(contentsOf: bytes[..<at].split(separator: 10).last ?? [], at: at) }
            }
        }
        // Some mutations stack.
        return random.next() % 4 == 0 ? mutate(bytes, &random) : bytes
    }

    /// Whether an error is one of Refit's typed errors (or a decoding error of a typed file), as the CLI prints in a line.
    static func isTyped(_ error: Error) -> Bool {
        error is DataError || error is CheckpointError || error is DecodingError || error is NoiseScheduleError
    }

    /// Runs `load` on `casesPerFormat` mutations of `valid`, written to `name` in a fresh folder, and checks the rules.
    static func fuzz(_ format: String, name: String, valid: [UInt8], seed: UInt64, load: (String) throws -> Void) throws -> (loaded: Int, refused: Int) {
        var random = SplitMix64(seed: seed)
        var loaded = 0, refused = 0
        try PretrainTestSupport.withTemporaryFolder { folder in
            let file = folder + "/" + name
            try Data(valid).write(to: URL(fileURLWithPath: file))
            try load(file)  // the valid input loads
            for n in 0..<casesPerFormat {
                let bytes = mutate(valid, &random)
                try Data(bytes).write(to: URL(fileURLWithPath: file))
                do { try load(file); loaded += 1 } catch {
                    refused += 1
                    #expect(isTyped(error), "\(format) case \(n): an untyped error \(type(of: error)): \(error)")
                    #expect(!"\(error)".isEmpty)
                }
                let left = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0 != name && !$0.hasSuffix(".npy") }
                #expect(left.isEmpty, "\(format) case \(n): loading wrote \(left)")
            }
        }
        return (loaded, refused)
    }

    static var ratings: [(user: Int, item: Int, rating: Int, time: Int)] {
        (0..<40).map { ($0 % 7, ($0 * 5) % 11, 1 + $0 % 5, 1_000 + $0) }
    }

    @Test func textFormatsLoadOrRefuseWithATypedError() throws {
        let csv = "user,item,rating,timestamp\n" + Self.ratings.map { "\($0.user),\($0.item),\($0.rating),\($0.time)" }.joined(separator: "\n") + "\n"
        let tsv = Self.ratings.map { "\($0.user)\t\($0.item)\t\($0.rating)\t\($0.time)" }.joined(separator: "\n") + "\n"
        let dat = Self.ratings.map { "\($0.user)::\($0.item)::\($0.rating)::\($0.time)" }.joined(separator: "\n") + "\n"
        let inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
            + Self.ratings.map { "\($0.user)\t\($0.item)\t\($0.rating)\t\($0.time)" }.joined(separator: "\n") + "\n"
        var total = 0
        for (format, name, text, offset) in [("CSV", "ratings.csv", csv, 1), ("TSV", "ratings.tsv", tsv, 2), ("MovieLens", "ratings.dat", dat, 3),
                                             ("RecBole", "data.inter", inter, 4)] as [(String, String, String, UInt64)] {
            let (loaded, refused) = try Self.fuzz(format, name: name, valid: Array(text.utf8), seed: Self.seed &+ offset) { path in
                _ = try DatasetLoader.load(path: path)
            }
            #expect(loaded > 0 && refused > 0, "\(format): the mutations should both keep and break some files (\(loaded) loaded, \(refused) refused)")
            total += loaded + refused
        }
        #expect(total == 4 * Self.casesPerFormat)
    }

    @Test func diffRecSplitFilesLoadOrRefuseWithATypedError() throws {
        let users = Self.ratings.map { Int32($0.user) }, items = Self.ratings.map { Int32($0.item) }
        let valid = Array(NumpyPairs.encode(users: users, items: items))
        let (loaded, refused) = try Self.fuzz("DiffRec npy", name: "train_list.npy", valid: valid, seed: Self.seed &+ 5) { path in
            let folder = (path as NSString).deletingLastPathComponent
            for split in ["valid_list.npy", "test_list.npy"] where !FileManager.default.fileExists(atPath: folder + "/" + split) {
                try NumpyPairs.encode(users: users.prefix(5), items: items.prefix(5)).write(to: URL(fileURLWithPath: folder + "/" + split))
            }
            _ = try DatasetLoader.load(path: folder, format: .diffrec)
        }
        #expect(refused > 0, "\(loaded) loaded, \(refused) refused")
    }

    @Test func safetensorsLoadOrRefuseWithATypedError() throws {
        let valid = Array(Safetensors.encode([("in_layers.0.weight", [3, 4], (0..<12).map { Float($0) / 7 }), ("in_layers.0.bias", [4], [1, -2, 3, 0.5])],
                                             metadata: ["format": "pt", "epoch": "3"]))
        let (loaded, refused) = try Self.fuzz("safetensors", name: "best.safetensors", valid: valid, seed: Self.seed &+ 6) { path in
            _ = try Safetensors.decode(try Data(contentsOf: URL(fileURLWithPath: path)), path: path)
        }
        // The checksum catches every change to the tensor data; what still loads changed only the header's layout.
        #expect(refused > Self.casesPerFormat / 2, "\(loaded) loaded, \(refused) refused")
    }

    @Test func runConfigurationsLoadOrRefuseWithATypedError() throws {
        let dataset = PretrainTestSupport.tinyDataset()
        var configuration = RunConfiguration(kind: .finetune, device: "cpu", data: DataSource(path: "builtin:demo"), dataset: dataset,
                                             diffrec: PretrainTestSupport.tinySettings())
        configuration.finetune = FinetunePreset.easeScore.settings
        let valid = Array(try RunFolder.json(configuration))
        let (loaded, refused) = try Self.fuzz("config.json", name: "config.json", valid: valid, seed: Self.seed &+ 7) { path in
            _ = try RunFolder((path as NSString).deletingLastPathComponent).readJSON(RunConfiguration.self, from: "config.json")
        }
        #expect(loaded > 0 && refused > 0, "\(loaded) loaded, \(refused) refused")
    }

    /// `--config` files (YAML and JSON) go through the command line itself: each mutated file either sets options or is
    /// refused in one line naming the file, and never traps. The run it names does not exist, so nothing trains.
    @Test func configFilesParseOrRefuseInOneLine() throws {
        let yaml = "# a tiny run\ndims: [16]\nsteps: 3\nepochs: 2\nlr: 0.01\nbatch-size: 500\neval_every: 1\nreweight: off\n"
        let json = #"{"dims": [16], "steps": 3, "epochs": 1, "lr": 0.01, "reweight": "off", "quiet": true}"#
        var random = SplitMix64(seed: Self.seed &+ 8)
        var refused = 0
        try PretrainTestSupport.withTemporaryFolder { folder in
            for (name, valid) in [("run.yaml", yaml), ("run.json", json)] {
                let file = folder + "/" + name
                for n in 0..<60 {
                    try Data(Self.mutate(Array(valid.utf8), &random)).write(to: URL(fileURLWithPath: file))
                    let result = try CLITests.refit(["pretrain", "--config", file, "--out", folder + "/none", "--resume", "--device", "cpu"])
                    #expect(result.status == 1 || result.status == 64, "\(name) case \(n): exit \(result.status): \(result.stderr)")
                    #expect(result.stderr.hasPrefix("Error: ") && result.stderr.contains(file) || result.stderr.contains("none"),
                            "\(name) case \(n): \(result.stderr)")
                    if result.stderr.contains(file) { refused += 1 }
                }
            }
            #expect(!FileManager.default.fileExists(atPath: folder + "/none"))
        }
        #expect(refused > 0, "no mutated config file was refused")
    }
}
