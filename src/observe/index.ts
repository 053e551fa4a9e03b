// Observability: what a process shows about itself and the cluster. Metrics (Prometheus, one
// registry per process), recent events, progress of long work, per-second series, and the
// cluster picture the status page and `polyfs status` draw. Other roles only record into it;
// nothing here changes what the filesystem does.
export { registry, metrics, collectProcessMetrics, counterCell, histogramCell, dropSeries, onCollect, CounterCell, HistogramCell, type Metrics } from './metrics'
export { events, EventLog, MAX_EVENTS, type EventInput, type EventLevel } from './events'
export { tasks, TaskList, Task, formatAmount, formatProgress, KEEP_FINISHED_MS, type TaskInput } from './progress'
export { series, Series, SERIES_POINTS, SERIES_STEP_MS } from './series'
export { gatherPicture, buildPicture, MAX_PICTURE_EVENTS, type Picture, type PictureNode, type PictureRegion, type PictureReplica, type GatherOptions, type NodeHealth, type RegionHealth } from './picture'
