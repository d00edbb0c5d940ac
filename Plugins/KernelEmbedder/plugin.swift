import Foundation
import PackagePlugin

/// Embeds every `Kernels/*.cl` file into the target as a Swift string constant (`KernelSources.all`).
@main
struct KernelEmbedder: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let kernelsDirectory = context.package.directoryURL.appending(path: "Kernels")
        let sources = try FileManager.default.contentsOfDirectory(atPath: kernelsDirectory.path)
            .filter { $0.hasSuffix(".cl") }
            .sorted()
            .map { kernelsDirectory.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "KernelSources.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(sources.count) OpenCL kernel files",
                executable: try context.tool(named: "EmbedKernels").url,
                arguments: [output.path] + sources.map(\.path),
                inputFiles: sources,
                outputFiles: [output]
            )
        ]
    }
}
