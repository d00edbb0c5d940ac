import Foundation
import PackagePlugin

/// Embeds every `Kernels/*.cl` file into the target as a Swift string constant (`KernelSources.all`), and the tuning
/// table `Kernels/tuning.json` beside them (`KernelSources.tuningTable`).
@main
struct KernelEmbedder: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let kernelsDirectory = context.package.directoryURL.appending(path: "Kernels")
        let sources = try FileManager.default.contentsOfDirectory(atPath: kernelsDirectory.path)
            .filter { $0.hasSuffix(".cl") || $0 == "tuning.json" }
            .sorted()
            .map { kernelsDirectory.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "KernelSources.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(sources.count) kernel files",
                executable: try context.tool(named: "EmbedKernels").url,
                arguments: [output.path] + sources.map(\.path),
                inputFiles: sources,
                outputFiles: [output]
            )
        ]
    }
}
