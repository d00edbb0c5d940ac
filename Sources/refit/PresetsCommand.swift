import ArgumentParser
import Foundation
import Refit

/// `refit presets`: every named recipe with every value it sets, as the flags that set it, so that a user can see
/// what `--preset NAME` means and spell out a variant of it.
struct PresetsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "presets",
        abstract: "List the pre-training presets and fine-tuning recipes, with every value each one sets as the flag that sets it.",
        discussion: "A column is a preset; a row is a flag; a dash is a flag that preset's recipe has no use for (another estimator's, another reward's). Flags given beside --preset override its values.")

    @Flag(inversion: .prefixedNo, help: "Print one JSON object: family → preset → flag → value (a switch is on or off: --reweight on is --reweight, off is --no-reweight).")
    var json = false

    /// One table: a family of presets, each as its flags.
    struct Family {
        var title: String
        var presets: [(name: String, flags: [(String, String)])]
    }

    static var families: [Family] {
        [Family(title: "DiffRec pre-training: refit pretrain --preset NAME (--model diffrec)",
                presets: DiffRecPreset.allCases.map { ($0.rawValue, DiffRecOptions.flags(of: $0.settings)) }),
         Family(title: "SASRec pre-training: refit pretrain --model sasrec --preset NAME",
                presets: SequentialPreset.allCases.map { ($0.rawValue, SequentialSettings.flags(of: $0.settings(model: .sasrec))) }),
         Family(title: "DreamRec pre-training: refit pretrain --model dreamrec --encoder-from RUN --preset NAME",
                presets: SequentialPreset.allCases.map { ($0.rawValue, SequentialSettings.flags(of: $0.settings(model: .dreamrec))) }),
         Family(title: "Fine-tuning a DiffRec run: refit finetune --preset NAME (default \(FinetunePreset.diffRecDefault.rawValue))",
                presets: FinetunePreset.allCases.map { ($0.rawValue, FinetuneOptions.flags(of: $0.settings)) }),
         Family(title: "Fine-tuning a DreamRec run (no presets: these are its defaults)",
                presets: [("dreamrec", FinetuneOptions.flags(of: .sequential))])]
    }

    /// The command-line arguments that a preset's flags stand for: a switch's on is the flag, its off the flag's --no- form.
    static func arguments(_ flags: [(String, String)]) -> [String] {
        flags.flatMap { flag, value in
            switch value {
            case "on": [flag]
            case "off": ["--no-" + flag.dropFirst(2)]
            default: [flag, value]
            }
        }
    }

    func run() throws {
        if json {
            var object: [String: [String: [String: String]]] = [:]
            for (key, family) in zip(["diffrec", "sasrec", "dreamrec", "finetune-diffrec", "finetune-dreamrec"], Self.families) {
                object[key] = Dictionary(uniqueKeysWithValues: family.presets.map { ($0.name, Dictionary(uniqueKeysWithValues: $0.flags)) })
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self))
            return
        }
        print(Self.families.map { family in
            // The rows in the order the flags first appear, so that related flags stay together.
            var order: [String] = []
            for preset in family.presets { for (flag, _) in preset.flags where !order.contains(flag) { order.append(flag) } }
            let rows = order.map { flag in
                [flag] + family.presets.map { preset in preset.flags.first { $0.0 == flag }?.1 ?? "—" }
            }
            return family.title + "\n" + formatTable(["flag"] + family.presets.map(\.name), rows)
        }.joined(separator: "\n\n"))
    }
}
