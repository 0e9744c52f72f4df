// The whole local sandbox: origin, Google Drive, SMTP and SePay API emulators on loopback, and the
// environment that points a separately started `driveship serve` at them.
import { randomBytes } from 'node:crypto';
import { startDriveEmulator, type DriveEmulator } from './drive/emulator';
import { startOrigin, type Origin } from './origin';
import { startSePayApi, type SePayApi } from './sepay/api';
import { startSmtpSink, type SmtpSink } from './smtp-sink';

export interface Sandbox {
  origin: Origin;
  drive: DriveEmulator;
  smtp: SmtpSink;
  sepayApi: SePayApi;
  /** Environment for a driveship host that should use these emulators. */
  env: Record<string, string>;
  close(): Promise<void>;
}

export interface SandboxOptions {
  originBytesPerSecPerConnection?: number | null;
  sepayApiToken?: string;
  /** Keep the emulated Google Drive in this file between runs (the demo's shop). */
  driveStateFile?: string;
  /** The Drive emulator computes md5Checksums (default true; see DriveEmulatorOptions.md5). */
  driveMd5?: boolean;
}

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const sepayToken = opts.sepayApiToken ?? randomBytes(16).toString('hex');
  const [origin, drive, smtp, sepayApi] = await Promise.all([
    startOrigin({ bytesPerSecPerConnection: opts.originBytesPerSecPerConnection ?? null }),
    startDriveEmulator({ stateFile: opts.driveStateFile, md5: opts.driveMd5 ?? true }),
    startSmtpSink(),
    startSePayApi({ token: sepayToken }),
  ]);
  const env: Record<string, string> = {
    DRIVESHIP_GOOGLE_ROOT_URL: drive.url,
    DRIVESHIP_SMTP_HOST: '127.0.0.1',
    DRIVESHIP_SMTP_PORT: String(smtp.port),
    DRIVESHIP_SMTP_FROM: 'Demo Shop <shop@driveship.test>',
    SEPAY_API_BASE: sepayApi.url,
    SEPAY_API_TOKEN: sepayToken,
    // Product files come from the origin emulator on this machine.
    DRIVESHIP_ALLOW_PRIVATE_ORIGINS: '1',
    // Tells the host it runs against the sandbox: with Drive on a loopback emulator too, it offers
    // simulated bank transfers (see sandboxMode in main/host/app.ts). A real shop has neither.
    DRIVESHIP_SANDBOX: '1',
  };
  return {
    origin,
    drive,
    smtp,
    sepayApi,
    env,
    close: async () => {
      await Promise.all([origin.close(), drive.close(), smtp.close(), sepayApi.close()]);
    },
  };
}
