import Foundation

public enum CheckpointError: Error, CustomStringConvertible {
    case missingTensor(String)
    case shapeMismatch(String, expected: [Int], found: [Int])
    case malformed(path: String, reason: String)
    case missingRun(String)
    case runExists(String)
    /// The output folder is, contains or lies inside a run the command reads.
    case overlapsInput(String, input: String)
    /// Refit replaces and continues only its own runs.
    case notARun(String, reason: String)
    /// `--resume` on a run of another kind than the command continues.
    case wrongKind(String, found: String, expected: String)
    /// Another process holds the run's `run.lock`.
    case locked(String, pid: Int32?)
    case unwritable(String, reason: String)
    /// A checkpoint's tensors hold NaN or infinity, or do not match their checksum.
    case corrupt(path: String, reason: String)

    public var description: String {
        switch self {
        case .missingTensor(let name): "checkpoint has no tensor named \(name)"
        case .shapeMismatch(let name, let expected, let found):
            "tensor \(name) has shape \(found) in the checkpoint, but the model needs \(expected)"
        case .malformed(let path, let reason): "\(path): \(reason)"
        case .missingRun(let path): "\(path): no such run folder (expected config.json and best.safetensors inside)"
        case .runExists(let path): "\(path) already exists and is not empty; choose another --out or pass --force to replace it"
        case .overlapsInput(let path, let input):
            "\(path) is, contains or lies inside the run \(input) that this command reads; write the new run elsewhere"
        case .notARun(let path, let reason): "\(path): not a Refit run folder (\(reason)); choose another folder"
        case .wrongKind(let path, let found, let expected): "\(path) is a \(found), not the \(expected) this command continues"
        case .locked(let path, let pid):
            "\(path) is being written by another Refit process\(pid.map { " (pid \($0))" } ?? ""); wait for it to finish or stop it (its lock is \(path)/run.lock)"
        case .unwritable(let path, let reason): "\(path): cannot write: \(reason)"
        case .corrupt(let path, let reason): "\(path): \(reason); the file is damaged, restore it or train again"
        }
    }
}

/// The safetensors format (github.com/huggingface/safetensors): an 8-byte little-endian header length, a JSON
/// header naming each tensor's dtype, shape and byte range, then the raw little-endian data. Python's
/// `safetensors.torch.load_file` reads what this writes. Only F32 tensors are written and read.
public enum Safetensors {
    /// The metadata key of the checksum of the tensor data, verified on every read.
    public static let checksumKey = "checksum_fnv1a64"

    public static func encode(_ tensors: [(name: String, shape: [Int], values: [Float])], metadata given: [String: String] = [:]) -> Data {
        var header: [String] = []
        var checksum = Checksum()
        for t in tensors { checksum.add(contentsOf: t.values.map { $0.bitPattern.littleEndian }) }
        var metadata = given
        metadata[checksumKey] = checksum.hex
        if !metadata.isEmpty {
            let fields = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            header.append("\"__metadata__\":{\(fields.joined(separator: ","))}")
        }
        var offset = 0
        for t in tensors {
            precondition(t.values.count == t.shape.reduce(1, *), "\(t.name): values do not fill shape \(t.shape)")
            let end = offset + t.values.count * 4
            header.append("\(jsonString(t.name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var json = Array("{\(header.joined(separator: ","))}".utf8)
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }  // aligns the data, as the reference writer does
        var data = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: json)
        for t in tensors { t.values.withUnsafeBytes { data.append(contentsOf: $0) } }
        return data
    }

    public static func decode(_ data: Data, path: String) throws(CheckpointError) -> (tensors: [String: (shape: [Int], values: [Float])], metadata: [String: String]) {
        func fail(_ reason: String) -> CheckpointError { .malformed(path: path, reason: reason) }
        guard data.count >= 8 else { throw fail("file is \(data.count) bytes, too short for a safetensors header") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8) else { throw fail("header length \(headerLength) exceeds the file") }
        let dataStart = 8 + Int(headerLength)
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<dataStart)) } catch {
            throw fail("header is not valid JSON")
        }
        guard let header = object as? [String: Any] else { throw fail("header is not a JSON object") }
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        var metadata = (header["__metadata__"] as? [String: String]) ?? [:]
        // Verified here, so not handed on: the metadata read back are the ones given to `encode`.
        let expected = metadata.removeValue(forKey: checksumKey)
        // The checksum covers the tensors in the order of their data, as they were written.
        var ordered: [(start: Int, name: String)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw fail("tensor \(name) has a malformed header entry")
            }
            guard dtype == "F32" else { throw fail("tensor \(name) has dtype \(dtype); only F32 is supported") }
            let count = shape.reduce(1, *)
            guard offsets[1] - offsets[0] == count * 4, offsets[0] >= 0, dataStart + offsets[1] <= data.count else {
                throw fail("tensor \(name): byte range \(offsets) does not match shape \(shape) or the file size")
            }
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { target in
                _ = data.copyBytes(to: target, from: (dataStart + offsets[0])..<(dataStart + offsets[1]))
            }
            tensors[name] = (shape, values.map { Float(bitPattern: UInt32(littleEndian: $0.bitPattern)) })
            ordered.append((offsets[0], name))
        }
        if let expected {
            var checksum = Checksum()
            for (_, name) in ordered.sorted(by: { $0.start < $1.start }) {
                checksum.add(contentsOf: tensors[name]!.values.map { $0.bitPattern.littleEndian })
            }
            guard checksum.hex == expected else { throw fail("the tensor data do not match the checksum written with them") }
        }
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
            let bad = tensor.values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
            guard bad == 0 else { throw fail("tensor \(name) holds \(bad == 1 ? "a value that is" : "\(bad) values that are") NaN or infinite") }
        }
        return (tensors, metadata)
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}

/// Writes files so that a crash never leaves a half-written one: write a temporary file beside, flush it to the disk,
/// then rename it over the target and flush the folder, so that the rename itself survives a power cut.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws {
        let temporary = temporaryURL(for: url)
        do { try writeSynced(data, to: temporary) } catch CheckpointError.unwritable(_, let reason) {
            throw CheckpointError.unwritable(url.path, reason: reason)  // the file the user named, not its temporary twin
        }
        try publish(temporary, as: url)
    }

    public static func write(_ text: String, to url: URL) throws { try write(Data(text.utf8), to: url) }

    /// `.NAME.tmp-PID` beside `url`: a run folder's recovery removes those its writer left behind.
    public static func temporaryURL(for url: URL) -> URL {
        url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent)\(temporaryMarker)\(ProcessInfo.processInfo.processIdentifier)")
    }

    static let temporaryMarker = ".tmp-"

    /// Writes `data` to `url` (created or truncated) and fsyncs it.
    static func writeSynced(_ data: Data, to url: URL) throws {
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw CheckpointError.unwritable(url.path, reason: String(cString: strerror(errno))) }
        defer { close(descriptor) }
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < bytes.count {
                let written = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                guard written > 0 else {
                    let reason = String(cString: strerror(errno))
                    unlink(url.path)
                    throw CheckpointError.unwritable(url.path, reason: reason)
                }
                offset += written
            }
        }
        guard fsync(descriptor) == 0 else { throw CheckpointError.unwritable(url.path, reason: String(cString: strerror(errno))) }
    }

    /// Renames `temporary` over `url` (atomically replacing it) and fsyncs the folder.
    static func publish(_ temporary: URL, as url: URL) throws {
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary.path)
            throw CheckpointError.unwritable(url.path, reason: reason)
        }
        syncFolder(url.deletingLastPathComponent())
    }

    static func syncFolder(_ folder: URL) {
        let descriptor = open(folder.path, O_RDONLY)
        if descriptor >= 0 { _ = fsync(descriptor); close(descriptor) }
    }
}
