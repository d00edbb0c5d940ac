import Foundation

/// `--config FILE` (YAML or JSON): every key is a flag name (`lr: 0.001`, `epochs: 50`, `force: true`, `reweight: false`).
/// The file's options are placed before the command line's, and since a repeated option keeps its last
/// value, flags on the command line win. The effective settings land in the run's config.json as usual.
enum ConfigFile {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The file given with `--config`, and for each flag it set, its key there: a bad value is reported by both.
    struct Source {
        let path: String
        let keys: [String: String]
    }

    /// The arguments with any `--config FILE` replaced by the file's options (put first, after the subcommand).
    static func expand(_ arguments: [String]) throws -> [String] { try expandWithSource(arguments).arguments }

    static func expandWithSource(_ arguments: [String]) throws -> (arguments: [String], source: Source?) {
        guard let index = arguments.firstIndex(where: { $0 == "--config" || $0.hasPrefix("--config=") }) else { return (arguments, nil) }
        var rest = arguments
        let path: String
        if arguments[index].hasPrefix("--config=") {
            path = String(arguments[index].dropFirst("--config=".count))
            rest.remove(at: index)
        } else {
            guard index + 1 < arguments.count else { throw Failure(description: "--config needs a file path") }
            path = arguments[index + 1]
            rest.removeSubrange(index...(index + 1))
        }
        let injected = try options(fromFile: path)
        // Keep the subcommand (the first argument not starting with "-") in front of the injected options.
        let insertAt = rest.firstIndex { !$0.hasPrefix("-") }.map { $0 + 1 } ?? 0
        rest.insert(contentsOf: injected.arguments, at: insertAt)
        return (rest, Source(path: path, keys: injected.keys))
    }

    static func options(fromFile path: String) throws -> (arguments: [String], keys: [String: String]) {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure(description: "\(path): no such config file") }
        guard let text = String(data: data, encoding: .utf8) else { throw Failure(description: "\(path): not UTF-8 text") }
        return try options(fromText: text, path: path)
    }

    /// The options of a config file's text; `path` names it in errors.
    static func options(fromText text: String, path: String = "the config file") throws -> (arguments: [String], keys: [String: String]) {
        let data = Data(text.utf8)
        var pairs: [(String, String)] = []
        if text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("{") {
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw Failure(description: "\(path): not a JSON object of flag names to values")
            }
            for key in object.keys.sorted() {
                let value = object[key]!
                // JSON booleans decode as NSNumber with objCType "c" (Swift's `as? Bool` also accepts 0 and 1).
                if let number = value as? NSNumber, String(cString: number.objCType) == "c" {
                    pairs.append((key, number.boolValue ? "true" : "false"))
                } else if let list = value as? [Any] { pairs.append((key, list.map { "\($0)" }.joined(separator: ","))) }
                else { pairs.append((key, "\(value)")) }
            }
        } else {
            for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
                if line.trimmingCharacters(in: .whitespaces).isEmpty || line.hasPrefix("---") { continue }
                guard let colon = line.firstIndex(of: ":") else {
                    throw Failure(description: "\(path):\(number + 1): expected 'flag: value'")
                }
                let key = line[..<colon].trimmingCharacters(in: .whitespaces)
                var value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if value.hasPrefix("[") && value.hasSuffix("]") { value = String(value.dropFirst().dropLast()).replacingOccurrences(of: " ", with: "") }
                if (value.hasPrefix("\"") && value.hasSuffix("\"")) || (value.hasPrefix("'") && value.hasSuffix("'")), value.count >= 2 {
                    value = String(value.dropFirst().dropLast())
                }
                guard !key.isEmpty, !key.contains(" ") else { throw Failure(description: "\(path):\(number + 1): '\(key)' is not a flag name") }
                pairs.append((key, value))
            }
        }
        var arguments: [String] = []
        var keys: [String: String] = [:]
        for (key, value) in pairs {
            let flag = "--" + (key.hasPrefix("--") ? String(key.dropFirst(2)) : key).replacingOccurrences(of: "_", with: "-")
            keys[flag] = key
            switch value.lowercased() {
            // YAML's booleans. Every switch has its --no- form, so false is said, not dropped: it overrides a preset's true.
            case "true", "yes", "on": arguments.append(flag)
            case "false", "no", "off": arguments.append("--no-" + flag.dropFirst(2))
            default: arguments += [flag, value]
            }
        }
        return (arguments, keys)
    }
}
