// The diagnostics bundle (see bundle.ts), as the rest of the app uses it.
export { buildDiagnostics, diagnosticsFileName, readAppVersion, writeDiagnosticsFile, DIAGNOSTICS_MAX_BYTES, type DiagnosticsFileOptions } from './bundle';
export type { DiagnosticsOptions } from './collect';
export type { ReportedEngine, TextSource } from './sections';
export { createSanitizer, maskEmail, maskEmails, maskName, maskTransferText, secretsFromEnv, type Sanitizer } from './sanitise';
