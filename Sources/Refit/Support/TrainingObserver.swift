/// Receives progress: one call per finished batch (for a live bar) and one line per event.
public protocol TrainingObserver: AnyObject {
    func batchFinished(epoch: Int, batch: Int, of batches: Int)
    func log(_ line: String)
}
