// V8's heap setting for a PolyFS process (docs/performance.md, "V8's first old-generation
// limit"). A PolyFS process allocates little JS but many large Buffers (16 KiB blocks, MiB
// messages) whose memory lives outside V8's heap. With V8's default first old-generation
// limit, sized for a small heap, V8 started incremental marking every 100-200 ms with the old
// generation at 11 of 27 MB: 74-80 full collections in 8 s of 4 KiB fsync'd writes on the
// single-node store, 7-8 with this setting; the cluster's sequential write 7-24% faster in the
// bench's rows (24-48% on a scratch cluster).
// It raises where the first full collection happens, not a bound: idle RSS did not change.
// Like GLIBC_TUNABLES (malloc.ts) it must be given when the process starts, so whoever starts
// a PolyFS process passes it (`polyfs dev`, the plugin, bin/polyfs's first line, the tests,
// the bench; README).
export const HEAP_FLAGS: readonly string[] = ['--initial-old-space-size=128']
