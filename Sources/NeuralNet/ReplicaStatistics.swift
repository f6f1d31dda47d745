// Batch statistics across data-parallel replicas. Each replica of a network with BatchNorm
// trains on a share of the batch, yet must normalize by the mean and variance of the whole
// batch, and in backward subtract the whole batch's gradient sums, as one network over the
// batch would (and as Keras and PyTorch do). The replicas run at once, one to a thread (the
// worker pool's parts of a batch); at each BatchNorm each posts its share's per-channel sums,
// they meet at a barrier, and each adds up every share in rank order. So every replica holds
// the same statistics, and the result does not depend on scheduling: a fixed seed and thread
// count give the same model.

import Foundation
import Synchronization
import Compute
import TensorCore

/// A reusable barrier for the replicas of one batch. It spins, yielding the core now and then:
/// the replicas reach it within microseconds of each other, and sleeping and waking took tens
/// of microseconds on this project's virtual machines (WorkerPool). Every party must be running
/// on a thread of its own, or the barrier never opens: the trainer uses no more replicas than
/// its pool has threads.
final class ReplicaBarrier: @unchecked Sendable {
    private let arrived = Atomic<Int>(0)
    private let generation = Atomic<Int>(0)
    /// The replicas of the current batch. Set by the trainer before it starts the batch's job
    /// (the pool's own atomics order the write before the replicas' reads).
    var parties = 1

    /// Returns when all `parties` have called it; what each wrote before is then visible to all.
    func wait() {
        guard parties > 1 else { return }
        let g = generation.load(ordering: .acquiring)
        if arrived.add(1, ordering: .acquiringAndReleasing).newValue == parties {
            // The last one: reset for the next use, then open (waiters see the reset too).
            arrived.store(0, ordering: .relaxed)
            generation.add(1, ordering: .releasing)
            return
        }
        var polls = 0
        while generation.load(ordering: .acquiring) == g {
            polls &+= 1
            if polls & 1023 == 0 { sched_yield() }
        }
    }
}

/// The partial sums of one BatchNorm layer's replicas, and the barrier they meet at.
final class ReplicaStatistics<T: Real> {
    let barrier: ReplicaBarrier
    let channels: Int
    /// The phases of a step, each with its own region of every replica's slot: a replica that
    /// has passed one barrier writes the next region while others still read the last.
    enum Phase: Int, CaseIterable { case mean, variance, gradient, gradientByXhat }
    /// replicas × phases × channels partial sums.
    private let slots: UnsafeMutablePointer<T>
    /// Each replica's rows (the positions its statistics are over), posted with its sums.
    private let rows: UnsafeMutablePointer<Int>

    init(replicas: Int, channels: Int, barrier: ReplicaBarrier) {
        self.channels = channels
        self.barrier = barrier
        let n = replicas * Phase.allCases.count * channels
        slots = .allocate(capacity: max(n, 1))
        slots.initialize(repeating: 0, count: max(n, 1))
        rows = .allocate(capacity: replicas)
        rows.initialize(repeating: 0, count: replicas)
    }

    deinit {
        slots.deallocate()
        rows.deallocate()
    }

    private func slot(_ rank: Int, _ phase: Phase) -> UnsafeMutablePointer<T> {
        slots + (rank * Phase.allCases.count + phase.rawValue) * channels
    }

    /// Posts `sums` (`channels` values over `rows` positions) as replica `rank`'s share of
    /// `phase`, waits for the batch's other replicas, and replaces `sums` by the total of every
    /// share, added in rank order. Returns the total rows (the counts posted with `.mean`, the
    /// step's first phase).
    @discardableResult
    func sum(_ sums: UnsafeMutablePointer<T>, rows count: Int, rank: Int, phase: Phase) -> Int {
        let parties = barrier.parties
        guard parties > 1 else { return count }
        slot(rank, phase).update(from: sums, count: channels)
        if phase == .mean { rows[rank] = count }
        barrier.wait()
        var total = 0
        for c in 0..<channels { sums[c] = 0 }
        for r in 0..<parties {
            let s = slot(r, phase)
            for c in 0..<channels { sums[c] += s[c] }
            total += rows[r]
        }
        return total
    }
}
