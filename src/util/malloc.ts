// glibc's malloc settings for a PolyFS process (docs/performance.md, "Large buffers and
// glibc's malloc"). A node copies every byte of file data several times through buffers of
// up to a few MiB (gRPC frames, protobuf encodings, LevelDB batches). With glibc's defaults
// each such buffer is a fresh mmap, paid for again in page faults on first touch; with these,
// they come from the heap and its pages are reused. Measured here: a 256 MiB sequential write
// through a 3-node cluster 15-17 -> 19-21 MB/s, and 10-20% less CPU for it. The cost: up to
// trim_threshold bytes of freed heap stay with the process after a burst.
// The variable must be set before the process starts: whoever starts a PolyFS process does
// (`polyfs dev`, the plugin's manifest, the tests, the bench); see README.

export const MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=536870912'

/** `env` with GLIBC_TUNABLES set to MALLOC_TUNABLES unless it already has one. */
export function withMallocTuning(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return env.GLIBC_TUNABLES ? env : { ...env, GLIBC_TUNABLES: MALLOC_TUNABLES }
}
