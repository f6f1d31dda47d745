// The limits every reader checks before it allocates or indexes; documented in tensor-stream(5).

import Foundation

/// Bounds on what a reader accepts. Every length and count in a stream is checked against these.
public struct Limits: Sendable {
    public var maxHeaderBytes = 16 << 20
    public var maxFields = 256
    public var maxMetadata = 4096
    public var maxNameBytes = 255
    public var maxValueBytes = 1 << 20
    public var maxRank = 8
    public var maxDim = Int(Int32.max)
    public var maxSampleBytes = 1 << 31
    public var maxSamplesPerBatch = Int(Int32.max)
    /// Largest batch record body; `TENSOR_MAX_BATCH_BYTES` overrides it.
    public var maxBatchBytes = 1 << 30

    public init() {}

    /// The defaults, with `TENSOR_MAX_BATCH_BYTES` applied when it holds a positive integer.
    public static var fromEnvironment: Limits {
        var l = Limits()
        if let s = ProcessInfo.processInfo.environment["TENSOR_MAX_BATCH_BYTES"],
           let v = Int(s), v > 0 {
            l.maxBatchBytes = v
        }
        return l
    }

    /// What is wrong with `TENSOR_MAX_BATCH_BYTES` when it is set but not a positive integer
    /// (which the defaults would otherwise replace without a word); nil when unset or good.
    public static var environmentProblem: String? {
        guard let s = ProcessInfo.processInfo.environment["TENSOR_MAX_BATCH_BYTES"] else { return nil }
        if let v = Int(s), v > 0 { return nil }
        return "takes a positive number of bytes, not '\(s.prefix(40))'"
    }
}
