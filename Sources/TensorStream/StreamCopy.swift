// Copying a stream: whole batches pass through verbatim (no re-encoding, no per-element work);
// choosing fields or cutting the sample count re-encodes only what changes.

/// Copies `reader` to `writer`, keeping the fields at `fieldIndices` (all when nil) and at most
/// `limit` samples. Returns the number of samples written.
@discardableResult
public func copyStream(from reader: StreamReader, to writer: StreamWriter, fieldIndices: [Int]? = nil, limit: Int? = nil) throws -> Int {
    let schema = reader.schema
    let sampleBytes = schema.fields.map(\.sampleBytes)
    var written = 0
    while let b = try reader.next() {
        let room = limit.map { $0 - written } ?? Int.max
        if room <= 0 { continue }  // keep reading: the input must still be complete and valid
        let n = min(b.count, room)
        if fieldIndices == nil && n == b.count {
            try writer.write(b)
        } else {
            let idx = fieldIndices ?? Array(schema.fields.indices)
            let views = idx.map { UnsafeRawBufferPointer(rebasing: b.field($0)[0..<n * sampleBytes[$0]]) }
            try writer.write(count: n, fields: views)
        }
        written += n
    }
    try writer.finish()
    return written
}

extension Schema {
    /// The schema with only `names`, in that order, and the metadata that belongs to them
    /// (the keys of dropped fields are dropped; keys of no field kept).
    public func selecting(_ names: [String]) -> (Schema, [Int])? {
        var idx: [Int] = []
        for n in names {
            guard let i = index(of: n) else { return nil }
            idx.append(i)
        }
        let dropped = Set(fields.map(\.name)).subtracting(names)
        let meta = metadata.filter { kv in owner(ofKey: kv.key).map { !dropped.contains($0) } ?? true }
        return (Schema(fields: idx.map { fields[$0] }, metadata: meta), idx)
    }

    /// The field a metadata key belongs to: the longest field name that, followed by a dot,
    /// begins the key. Names may hold dots, so with fields `y` and `y.classes` the key
    /// `y.classes` is y's class list and `y.classes.source` is the field y.classes's source;
    /// nil for a key of no field (`provenance.cmd`).
    public func owner(ofKey key: String) -> String? {
        var best: String?
        for f in fields where key.hasPrefix(f.name + ".") && f.name.count > (best?.count ?? -1) { best = f.name }
        return best
    }
}
