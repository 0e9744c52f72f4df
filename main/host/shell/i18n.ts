// Every word the shell shows itself (tray, notifications, dialogs), in Vietnamese and English.
// The renderer has its own catalogue; these are the few strings the OS draws for us.
import type { Lang } from './types';

export function pickLanguage(configured: string | null | undefined, systemLocales: readonly string[]): Lang {
  if (configured === 'vi' || configured === 'en') return configured;
  for (const locale of systemLocales) {
    const base = locale.toLowerCase().split(/[-_]/)[0];
    if (base === 'vi') return 'vi';
    if (base === 'en') return 'en';
  }
  return 'vi';
}

/** `1234000` → `1.234.000 ₫`, the same in both languages (it is how Vietnamese banks write it). */
export function formatVnd(amount: number): string {
  const sign = amount < 0 ? '-' : '';
  const digits = String(Math.round(Math.abs(amount)));
  return `${sign}${digits.replace(/\B(?=(\d{3})+(?!\d))/g, '.')} ₫`;
}

interface Catalogue {
  menu: {
    open: string;
    pauseAll: string;
    resumeAll: string;
    openAtLogin: string;
    quit: string;
    statusIdle: string;
    statusPaused: string;
    statusWorking: (n: number) => string;
    statusAttention: (n: number) => string;
  };
  tooltip: Record<'idle' | 'working' | 'attention' | 'paused', string>;
  notice: {
    paymentTitle: string;
    paymentBody: (amount: string, matched: boolean) => string;
    deliveredTitle: string;
    deliveredBody: string;
    failedTitle: string;
    failedBody: string;
    alertTitle: Record<'info' | 'warning' | 'error', string>;
    summaryTitle: string;
    payments: (n: number) => string;
    delivered: (n: number) => string;
    failed: (n: number) => string;
    alerts: (n: number) => string;
    stillRunningTitle: string;
    stillRunningBody: string;
  };
  quit: {
    message: (n: number) => string;
    detail: string;
    quitAnyway: string;
    keepRunning: string;
  };
  startFailed: {
    title: string;
    portInUse: (port: string) => string;
    sqliteBuild: string;
    other: (message: string) => string;
  };
  core: {
    restartingTitle: string;
    restartingBody: string;
    gaveUpTitle: string;
    gaveUpBody: (logDir: string) => string;
  };
}

const vi: Catalogue = {
  menu: {
    open: 'Mở driveship',
    pauseAll: 'Tạm dừng tất cả',
    resumeAll: 'Tiếp tục tất cả',
    openAtLogin: 'Khởi động cùng máy',
    quit: 'Thoát',
    statusIdle: 'Không có việc đang chạy',
    statusPaused: 'Đã tạm dừng',
    statusWorking: (n) => `Đang chuyển ${n} tệp`,
    statusAttention: (n) => `${n} việc cần bạn xử lý`,
  },
  tooltip: {
    idle: 'driveship: sẵn sàng',
    working: 'driveship: đang giao hàng',
    attention: 'driveship: cần bạn xử lý',
    paused: 'driveship: đã tạm dừng',
  },
  notice: {
    paymentTitle: 'Đã nhận thanh toán',
    paymentBody: (amount, matched) => (matched ? `${amount} đã vào tài khoản.` : `${amount} chưa khớp với đơn hàng nào: hãy gán cho đơn.`),
    deliveredTitle: 'Đã giao hàng',
    deliveredBody: 'Khách hàng đã nhận được sản phẩm.',
    failedTitle: 'Giao hàng thất bại',
    failedBody: 'Mở để xem lý do và thử lại.',
    alertTitle: { info: 'Thông báo', warning: 'Cảnh báo', error: 'Lỗi cần xử lý' },
    summaryTitle: 'driveship: cập nhật mới',
    payments: (n) => `${n} thanh toán đã nhận`,
    delivered: (n) => `${n} đơn đã giao xong`,
    failed: (n) => `${n} đơn giao thất bại`,
    alerts: (n) => `${n} cảnh báo`,
    stillRunningTitle: 'driveship vẫn đang chạy',
    stillRunningBody: 'Việc giao hàng tiếp tục ở khay hệ thống. Chọn Thoát trong menu khay để tắt hẳn.',
  },
  quit: {
    message: (n) => `Đang chuyển ${n} tệp. Vẫn thoát?`,
    detail: 'Các tệp sẽ tiếp tục từ chỗ đã dừng khi bạn mở lại driveship.',
    quitAnyway: 'Vẫn thoát',
    keepRunning: 'Tiếp tục chạy',
  },
  startFailed: {
    title: 'driveship không khởi động được',
    portInUse: (port) => `Cổng ${port} đang được dùng, có thể driveship đã chạy ở chế độ dòng lệnh. Hãy tắt nó rồi mở lại.`,
    sqliteBuild: 'Thư viện cơ sở dữ liệu chưa được dựng cho Electron. Khi chạy từ mã nguồn, hãy mở bằng `npm run desktop`.',
    other: (message) => `Lỗi: ${message}`,
  },
  core: {
    restartingTitle: 'driveship đang khởi động lại',
    restartingBody: 'Phần xử lý đơn hàng dừng bất ngờ và đang được khởi động lại. Không mất đơn nào: việc giao hàng tiếp tục từ chỗ đã dừng.',
    gaveUpTitle: 'driveship dừng liên tục',
    gaveUpBody: (logDir) => `Phần xử lý đơn hàng dừng nhiều lần liên tiếp nên driveship sẽ thoát. Hãy mở lại driveship; nếu vẫn lỗi, gửi cho hỗ trợ các tệp nhật ký trong ${logDir}.`,
  },
};

const en: Catalogue = {
  menu: {
    open: 'Open driveship',
    pauseAll: 'Pause all',
    resumeAll: 'Resume all',
    openAtLogin: 'Start at login',
    quit: 'Quit',
    statusIdle: 'Nothing running',
    statusPaused: 'Paused',
    statusWorking: (n) => `Transferring ${n} ${n === 1 ? 'file' : 'files'}`,
    statusAttention: (n) => `${n} ${n === 1 ? 'thing needs' : 'things need'} your attention`,
  },
  tooltip: {
    idle: 'driveship: ready',
    working: 'driveship: delivering',
    attention: 'driveship: needs your attention',
    paused: 'driveship: paused',
  },
  notice: {
    paymentTitle: 'Payment received',
    paymentBody: (amount, matched) => (matched ? `${amount} arrived.` : `${amount} matches no order: assign it to one.`),
    deliveredTitle: 'Delivery completed',
    deliveredBody: 'The customer has their product.',
    failedTitle: 'Delivery failed',
    failedBody: 'Open it to see why and retry.',
    alertTitle: { info: 'Notice', warning: 'Warning', error: 'Needs your attention' },
    summaryTitle: 'driveship: new activity',
    payments: (n) => `${n} ${n === 1 ? 'payment' : 'payments'} received`,
    delivered: (n) => `${n} ${n === 1 ? 'delivery' : 'deliveries'} completed`,
    failed: (n) => `${n} ${n === 1 ? 'delivery' : 'deliveries'} failed`,
    alerts: (n) => `${n} ${n === 1 ? 'alert' : 'alerts'}`,
    stillRunningTitle: 'driveship is still running',
    stillRunningBody: 'Deliveries continue from the tray. Choose Quit in the tray menu to stop it.',
  },
  quit: {
    message: (n) => `${n} ${n === 1 ? 'transfer is' : 'transfers are'} running. Quit anyway?`,
    detail: 'They continue where they stopped when you open driveship again.',
    quitAnyway: 'Quit anyway',
    keepRunning: 'Keep running',
  },
  startFailed: {
    title: 'driveship could not start',
    portInUse: (port) => `Port ${port} is in use, perhaps by driveship running from the command line. Stop it and open driveship again.`,
    sqliteBuild: 'The database library is not built for Electron. From a checkout, start the desktop with `npm run desktop`.',
    other: (message) => `Error: ${message}`,
  },
  core: {
    restartingTitle: 'driveship is restarting',
    restartingBody: 'The part that handles orders stopped unexpectedly and is being restarted. Nothing is lost: deliveries continue where they stopped.',
    gaveUpTitle: 'driveship keeps stopping',
    gaveUpBody: (logDir) => `The part that handles orders stopped several times in a row, so driveship will quit. Open driveship again; if it happens again, send the log files in ${logDir} to support.`,
  },
};

const catalogues: Record<Lang, Catalogue> = { vi, en };

export function texts(lang: Lang): Catalogue {
  return catalogues[lang];
}
