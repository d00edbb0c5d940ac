import Foundation

/// The one rule by which Refit writes run folders: it replaces or continues only a folder it can prove is its own run,
/// never one that is, contains or lies inside a run it reads; replacing moves the old run aside instead of deleting it;
/// and one process at a time writes a run, holding its `run.lock`.
extension RunFolder {
    /// What config.json says a Refit run is: its kind ("pretrain", "finetune", "ablation"), whether it is a
    /// sequential one, and its model ("diffrec", "sasrec", "dreamrec"). Every config.json Refit writes has `kind`,
    /// `version` and `createdAt`: that is the marker.
    public struct Identity: Sendable, Equatable {
        public let kind: String
        public let sequential: Bool
        public let model: String?

        public init(kind: String, sequential: Bool, model: String? = nil) {
            self.kind = kind
            self.sequential = sequential
            self.model = model
        }

        var name: String {
            let what = kind == "pretrain" ? "pre-training" : kind == "finetune" ? "fine-tuning" : kind
            return [model.map { $0 == "diffrec" ? "DiffRec" : $0 == "sasrec" ? "SASRec" : $0 == "dreamrec" ? "DreamRec" : $0 }, what, "run"]
                .compactMap { $0 }.joined(separator: " ")
        }
    }

    /// The folder's identity, or nil when it holds no config.json that Refit wrote.
    public var identity: Identity? {
        guard let data = FileManager.default.contents(atPath: file("config.json").path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let kind = object["kind"] as? String, object["version"] is String, object["createdAt"] is String else { return nil }
        return Identity(kind: kind, sequential: object["scenario"] as? String == "sequential", model: object["model"] as? String)
    }

    /// The absolute path with `.` and `..` resolved and the symbolic links of its existing part followed.
    var resolvedPath: String {
        var existing = url.standardizedFileURL, missing: [String] = []
        while !FileManager.default.fileExists(atPath: existing.path) && existing.pathComponents.count > 1 {
            missing.insert(existing.lastPathComponent, at: 0)
            existing.deleteLastPathComponent()
        }
        return missing.reduce(existing.resolvingSymlinksInPath()) { $0.appendingPathComponent($1) }.path
    }

    /// Refuses a folder that is, contains or lies inside one of `inputs`.
    func checkApart(from inputs: [RunFolder]) throws {
        let mine = resolvedPath
        for input in inputs {
            let theirs = input.resolvedPath
            if mine == theirs || theirs.hasPrefix(mine + "/") || mine.hasPrefix(theirs + "/") {
                throw CheckpointError.overlapsInput(path, input: input.path)
            }
        }
    }

    /// Prepares the folder of a new run and takes its lock. An empty or absent folder is used as it is. An existing
    /// Refit run is refused unless `replacing`, which moves it aside to `NAME.replaced-<UTC time>`; a folder that is
    /// not a Refit run is refused either way. Returns the lock and where an old run was moved.
    @discardableResult
    public func createNew(replacing: Bool, inputs: [RunFolder] = []) throws -> (lock: RunLock, movedTo: String?) {
        try checkApart(from: inputs)
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        var movedTo: String? = nil
        if manager.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw CheckpointError.notARun(path, reason: "it is a file") }
            // A lock or temporary file left by a writer killed before its config.json is not a run's content.
            let contents = ((try? manager.contentsOfDirectory(atPath: path)) ?? []).filter {
                $0 != RunLock.fileName && !Self.isWriterLeftover($0)
            }
            if !contents.isEmpty {
                guard identity != nil else {
                    throw CheckpointError.notARun(path, reason: "the folder is not empty and holds no Refit run (config.json), so Refit leaves it alone")
                }
                guard replacing else { throw CheckpointError.runExists(path) }
                // A run another process is writing is not replaced under it; its lock is held through the move, so no
                // second writer can take the folder in between, and it leaves with the old run.
                let old = try RunLock.acquire(self)
                movedTo = try moveAside()
                old.forget()
                unlink(movedTo! + "/" + RunLock.fileName)
            }
        }
        do { try manager.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw CheckpointError.unwritable(path, reason: FileProblem.describe(error))
        }
        return (try RunLock.acquire(self), movedTo)
    }

    /// Whether the run has a checkpoint to resume from (a run killed before its first has none).
    public var hasCheckpoint: Bool { FileManager.default.fileExists(atPath: file("state.json").path) }

    /// Opens an existing run to continue it, after checking that it is the kind the command continues, and takes its
    /// lock; nothing is written before both hold.
    public func openForResume(_ expected: Identity) throws -> RunLock {
        try requireRun()
        guard let found = identity else { throw CheckpointError.notARun(path, reason: "its config.json was not written by Refit") }
        guard found.kind == expected.kind, found.sequential == expected.sequential, expected.model == nil || found.model == expected.model else {
            throw CheckpointError.wrongKind(path, found: found.name, expected: expected.name)
        }
        let lock = try RunLock.acquire(self)
        try recoverInterruptedWrites()
        return lock
    }

    /// Renames the folder to the first free `NAME.replaced-<UTC time>[-N]` beside it: what Refit replaces, it keeps.
    func moveAside() throws -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        let base = path + ".replaced-" + formatter.string(from: Date())
        var target = base, n = 2
        while FileManager.default.fileExists(atPath: target) { target = "\(base)-\(n)"; n += 1 }
        guard rename(path, target) == 0 else {
            throw CheckpointError.unwritable(path, reason: "cannot move the old run aside to \(target): \(String(cString: strerror(errno)))")
        }
        return target
    }
}

/// `run.lock`: the process id of the one process writing a run folder. A second writer is refused by name; a lock
/// left by a process that no longer runs (killed) is taken over. Re-entrant within one process.
public final class RunLock: @unchecked Sendable {
    public let folder: RunFolder
    private var held = true

    private init(folder: RunFolder) { self.folder = folder }

    static let fileName = "run.lock"

    static func acquire(_ folder: RunFolder) throws -> RunLock {
        let file = folder.file(fileName).path
        let me = ProcessInfo.processInfo.processIdentifier
        for _ in 0..<2 {
            let descriptor = open(file, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            if descriptor >= 0 {
                let text = "\(me)\n"
                _ = text.withCString { write(descriptor, $0, strlen($0)) }
                close(descriptor)
                return RunLock(folder: folder)
            }
            guard errno == EEXIST else {
                throw CheckpointError.unwritable(folder.path, reason: "cannot create run.lock: \(String(cString: strerror(errno)))")
            }
            let holder = Self.holder(of: file)
            if holder == me { return RunLock(folder: folder) }
            if let holder, kill(holder, 0) == 0 || errno == EPERM { throw CheckpointError.locked(folder.path, pid: holder) }
            unlink(file)  // its writer is gone
        }
        throw CheckpointError.locked(folder.path, pid: nil)
    }

    /// Gives up the lock without touching its file (which moved away with its folder).
    func forget() { held = false }

    /// Removes the lock file if this process holds it.
    public func release() {
        guard held else { return }
        held = false
        let file = folder.file(Self.fileName).path
        if Self.holder(of: file) == ProcessInfo.processInfo.processIdentifier { unlink(file) }
    }

    /// The process id written in a lock file, if it holds one.
    static func holder(of file: String) -> Int32? {
        (try? String(contentsOfFile: file, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    deinit { release() }
}

/// Foundation's file and decoding errors in a user's words.
public enum FileProblem {
    /// Which key is missing or wrong, or where the text stops being JSON (`data`, when given, is parsed again for that).
    public static func describe(decoding error: Error, data: Data? = nil) -> String {
        func path(_ keys: [CodingKey]) -> String { keys.isEmpty ? "the top level" : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") }
        guard let error = error as? DecodingError else { return "\(error)" }
        switch error {
        case .keyNotFound(let key, let context): return "the key \(path(context.codingPath + [key])) is missing"
        case .typeMismatch(let type, let context): return "\(path(context.codingPath)) is not a \(type)"
        case .valueNotFound(let type, let context): return "\(path(context.codingPath)) is null where a \(type) is needed"
        case .dataCorrupted(let context):
            guard context.codingPath.isEmpty else { return "\(path(context.codingPath)): \(context.debugDescription)" }
            return "not valid JSON" + (data.flatMap(syntaxPosition).map { " at line \($0.line), column \($0.column)" } ?? "")
        @unknown default: return "\(error)"
        }
    }

    /// Where JSONSerialization stops reading `data` ("… around character N."), as a 1-based line and column.
    static func syntaxPosition(_ data: Data) -> (line: Int, column: Int)? {
        do { _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]); return nil } catch {
            guard let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String,
                  let range = text.range(of: #"character (\d+)"#, options: .regularExpression),
                  let offset = Int(text[range].dropFirst("character ".count)) else { return nil }
            let before = data.prefix(offset)
            let line = before.reduce(1) { $0 + ($1 == 10 ? 1 : 0) }
            return (line, offset - (before.lastIndex(of: 10).map { $0 + 1 } ?? 0) + 1)
        }
    }

    public static func describe(_ error: Error) -> String {
        let ns = error as NSError
        if let posix = (ns.userInfo[NSUnderlyingErrorKey] as? NSError).flatMap({ $0.domain == NSPOSIXErrorDomain ? $0.code : nil }) {
            return String(cString: strerror(Int32(posix)))
        }
        switch CocoaError.Code(rawValue: ns.code) {
        case .fileWriteNoPermission, .fileReadNoPermission: return "permission denied"
        case .fileWriteOutOfSpace: return "no space left on the device"
        case .fileWriteVolumeReadOnly: return "the file system is read-only"
        case .fileNoSuchFile, .fileReadNoSuchFile: return "no such file or folder"
        default: return ns.localizedDescription
        }
    }
}

/// Several files of a run written as one step (a checkpoint): each is written beside its target as `.NAME.pending`
/// and flushed, then a journal naming them commits the group, then each is renamed into place. A writer killed before
/// the journal leaves the old files whole; one killed after it leaves a journal that `recoverInterruptedWrites`
/// completes. Either way the group is all old or all new.
extension RunFolder {
    static let journalName = "checkpoint.pending"

    func pendingURL(_ name: String) -> URL { file(".\(name).pending") }

    public func writeTogether(_ files: [(name: String, data: Data)]) throws {
        for step in publicationSteps(files) { try step() }
    }

    /// `writeTogether` as the file operations it performs, in order: a writer killed after any prefix of them leaves
    /// a folder that `recoverInterruptedWrites` makes whole (the fault tests run every prefix).
    func publicationSteps(_ files: [(name: String, data: Data)]) -> [() throws -> Void] {
        let journal = file(Self.journalName)
        return files.map { name, data in { try AtomicFile.writeSynced(data, to: self.pendingURL(name)) } }
            + [{ try AtomicFile.write(Data(files.map(\.name).joined(separator: "\n").utf8), to: journal) }]
            + files.map { name, _ in { try AtomicFile.publish(self.pendingURL(name), as: self.file(name)) } }
            + [{ unlink(journal.path); AtomicFile.syncFolder(self.url) }]
    }

    /// Renames the journal's pending files into place, then removes the journal.
    func publishPending() throws {
        let journal = file(Self.journalName)
        guard let text = try? String(contentsOf: journal, encoding: .utf8) else { return }
        for name in text.split(separator: "\n").map(String.init) where FileManager.default.fileExists(atPath: pendingURL(name).path) {
            try AtomicFile.publish(pendingURL(name), as: file(name))
        }
        unlink(journal.path)
        AtomicFile.syncFolder(url)
    }

    /// What a killed writer left: completes a committed group of files, removes an uncommitted one and every
    /// temporary file. Call it holding the run's lock, before reading the run to continue it.
    public func recoverInterruptedWrites() throws {
        try publishPending()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] where Self.isWriterLeftover(name) {
            unlink(file(name).path)
        }
    }

    /// Whether a file name is one a writer makes on its way and removes when done: a checkpoint's `.NAME.pending` or
    /// an atomic write's `.NAME.tmp-PID`.
    static func isWriterLeftover(_ name: String) -> Bool {
        name.hasPrefix(".") && (name.hasSuffix(".pending") || name.contains(AtomicFile.temporaryMarker))
    }
}
