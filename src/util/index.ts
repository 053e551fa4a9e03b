// src/util: small shared pieces with no knowledge of any role.
//   log.ts  pino logger with a component field
export { logger, rootLogger, setLogLevel } from './log'
export type { Logger } from './log'
