// Persistent worker threads for the training loop's data parallelism. A training step hands
// out two jobs (the shards' forward and backward, then the gradient sum and optimizer step) of
// a millisecond or so each; DispatchQueue.concurrentPerform woke a sleeping thread for each,
// which took about 70 µs on this project's 2-core virtual machines (measured: 2 µs with the
// workers below), and the other core's share of the step waited for it. So the workers poll
// between jobs, and sleep only after 0.3 ms without one (between epochs, during a checkpoint).
// Prediction runs its network replicas on the same workers, so there is one thread mechanism.

import Foundation
import Synchronization
import TensorStream

/// What the workers and the calling thread share.
private final class PoolState: @unchecked Sendable {
    /// Bumped (sequentially consistent) for each job; a worker runs a job when it sees it change.
    let generation = Atomic<Int>(0)
    /// Workers that have not finished the current job.
    let pending = Atomic<Int>(0)
    /// Workers asleep on `condition`, which a new job must wake.
    let sleepers = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let condition = NSCondition()
    /// The job's size: worker k runs `job(k)` when k < count. Written before `generation` is
    /// bumped and read after it is seen, so the atomics order the accesses.
    var count = 0
    let job: (Int) -> Void

    init(job: @escaping (Int) -> Void) { self.job = job }
}

/// A worker's start: the shared state and its part.
private final class WorkerStart {
    let state: PoolState, index: Int
    init(_ state: PoolState, _ index: Int) { (self.state, self.index) = (state, index) }
}

/// Runs `job(k)` for k in 0..<n on the calling thread (k = 0) and up to `threads − 1` workers.
/// Jobs do not overlap: `run` returns when every part is done.
final class WorkerPool {
    private let state: PoolState
    /// Workers started: parts 1…workers. Should the system refuse a thread, the calling thread
    /// runs the parts beyond.
    private var workers = 0
    /// Parts that run at once: the calling thread's and the workers'.
    var concurrency: Int { workers + 1 }
    /// How long a worker polls for the next job before it sleeps, in nanoseconds.
    private static let pollingTime: UInt64 = 300_000

    init(threads: Int, job: @escaping (Int) -> Void) {
        state = PoolState(job: job)
        for k in 1..<max(threads, 1) {
            let start = Unmanaged.passRetained(WorkerStart(state, k)).toOpaque()
            var thread = pthread_t()
            // TENSOR_FAULT=thread:N refuses the Nth thread, as a system at its process limit does.
            let rc = FaultInjection.fails("thread") ? EAGAIN : pthread_create(&thread, nil, { arg in
                let w = Unmanaged<WorkerStart>.fromOpaque(arg!).takeRetainedValue()
                WorkerPool.work(w.state, index: w.index)
                return nil
            }, start)
            guard rc == 0 else {
                Unmanaged<WorkerStart>.fromOpaque(start).release()
                break
            }
            pthread_detach(thread)
            workers = k
        }
    }

    deinit {
        // The workers hold the state, not the pool: tell them to return.
        state.stopping.store(true, ordering: .sequentiallyConsistent)
        state.generation.add(1, ordering: .sequentiallyConsistent)
        state.condition.lock()
        state.condition.broadcast()
        state.condition.unlock()
    }

    /// Runs `job(k)` for every k < `n` (at most `threads`), and returns when all are done.
    func run(_ n: Int) {
        let s = state
        guard workers > 0, n > 1 else {
            for k in 0..<n { s.job(k) }
            return
        }
        s.count = n
        s.pending.store(workers, ordering: .relaxed)
        s.generation.add(1, ordering: .sequentiallyConsistent)
        // A worker going to sleep counts itself, then looks at `generation` again; we bumped
        // `generation`, then look at `sleepers`: one of the two sees the other's write.
        if s.sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            s.condition.lock()
            s.condition.broadcast()
            s.condition.unlock()
        }
        s.job(0)
        for k in workers + 1..<max(n, workers + 1) { s.job(k) }
        // The workers' parts take about as long as ours. Polling yields the core now and then,
        // should a worker be waiting for it (more threads than cores: two trainings at once).
        var polls = 0
        while s.pending.load(ordering: .acquiring) > 0 {
            polls &+= 1
            if polls & 1023 == 0 { sched_yield() }
        }
    }

    private static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }

    private static func work(_ s: PoolState, index k: Int) {
        var seen = 0
        while true {
            var g = s.generation.load(ordering: .sequentiallyConsistent)
            var polls = 0, since: UInt64 = 0
            while g == seen {
                // Poll, yielding the core now and then to any thread waiting for it, until
                // `pollingTime` has passed without a job; then sleep.
                polls &+= 1
                if polls & 1023 != 0 {
                    g = s.generation.load(ordering: .sequentiallyConsistent)
                    continue
                }
                if since == 0 { since = now() }
                if now() &- since < pollingTime {
                    sched_yield()
                    g = s.generation.load(ordering: .sequentiallyConsistent)
                    continue
                }
                s.condition.lock()
                s.sleepers.add(1, ordering: .sequentiallyConsistent)
                g = s.generation.load(ordering: .sequentiallyConsistent)
                while g == seen {
                    s.condition.wait()
                    g = s.generation.load(ordering: .sequentiallyConsistent)
                }
                s.sleepers.subtract(1, ordering: .sequentiallyConsistent)
                s.condition.unlock()
            }
            seen = g
            if s.stopping.load(ordering: .sequentiallyConsistent) { return }
            if k < s.count { s.job(k) }
            s.pending.subtract(1, ordering: .releasing)
        }
    }
}
