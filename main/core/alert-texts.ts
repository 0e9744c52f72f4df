// What each alert says to the owner, in Vietnamese and English, by its code: the one catalogue the
// window (dashboard, tray) and the owner's email/Telegram alerts read. The message an alert is
// raised with (English, sometimes with details such as which secrets) is the fallback for a code
// not listed here, and goes to the log.
export type AlertLang = 'vi' | 'en';

export interface AlertText {
  message: string;
  action: string;
}

const en: Record<string, AlertText> = {
  DRIVE_FULL: { message: 'Google Drive is full: uploads are paused.', action: 'Free space in Google Drive (or buy more storage), then press “Resume all” on the Deliveries page.' },
  GOOGLE_DISCONNECTED: { message: 'Google Drive is not connected: deliveries are paused.', action: 'Connect Google Drive in Settings; deliveries continue by themselves.' },
  SHARING_LIMIT: { message: 'Google limits how many shares you can make right now: sharing is paused.', action: 'Sharing retries by itself; nothing to do unless it lasts for hours.' },
  DISK_FULL: { message: 'This computer’s disk is full: downloads are paused.', action: 'Free some disk space, then press “Resume all” on the Deliveries page.' },
  DELIVERIES_FAILING: { message: 'Several deliveries failed in the last hour.', action: 'Open Deliveries → Failed, read the reasons, fix the cause and press “Retry all failed”.' },
  DISK_LOW: { message: 'The disk that holds driveship\'s data is nearly full.', action: 'Free disk space: downloads pause when the disk is full.' },
  WEBHOOK_SILENT: { message: 'SePay\'s payment notices are not getting through: payments were found only by the regular check.', action: 'Check that the tunnel works and that the webhook address in SePay is the one in Settings.' },
  TUNNEL_DOWN: { message: 'SePay cannot reach this shop: the public address does not answer.', action: 'Check the tunnel in Settings. Payments are still found by the regular check, but later.' },
  WORKERS_STUCK: { message: 'Transfers got stuck several times in the last hour and were restarted.', action: 'Transfers go on by themselves; if this keeps happening, send a diagnostics file to support.' },
  WATCHDOG_REPEATED: { message: 'Transfers keep getting stuck and are being restarted.', action: 'Check the internet connection and the product\'s source.' },
  SECRETS_NEED_REENTRY: { message: 'Some secrets (keys, passwords) saved in Settings must be typed again.', action: 'Open Settings: the fields to fill in again are marked.' },
  SECRETS_LOCKED: { message: 'The secrets saved in Settings cannot be opened on this computer.', action: 'Open driveship the way it was set up (the desktop app), or type the secrets again in Settings.' },
  SECRETS_IN_OLD_BACKUPS: { message: 'Backups made by an older driveship still hold your secrets in plain text.', action: 'Delete the old backups in the data folder once newer ones exist.' },
  JOB_FAILING: { message: 'A scheduled task keeps failing.', action: 'Open Support → Scheduled tasks to see which and why; run it again once the cause is fixed.' },
};

const vi: Record<string, AlertText> = {
  DRIVE_FULL: { message: 'Google Drive đã đầy: việc tải lên đang tạm dừng.', action: 'Giải phóng dung lượng Google Drive (hoặc mua thêm), rồi bấm “Tiếp tục tất cả” ở trang Giao hàng.' },
  GOOGLE_DISCONNECTED: { message: 'Google Drive chưa được kết nối: việc giao hàng đang tạm dừng.', action: 'Kết nối Google Drive trong Cài đặt; việc giao hàng sẽ tự tiếp tục.' },
  SHARING_LIMIT: { message: 'Google đang giới hạn số lượt chia sẻ: việc chia sẻ tạm dừng.', action: 'Việc chia sẻ sẽ tự thử lại; không cần làm gì trừ khi kéo dài nhiều giờ.' },
  DISK_FULL: { message: 'Ổ đĩa của máy đã đầy: việc tải về đang tạm dừng.', action: 'Giải phóng dung lượng ổ đĩa rồi bấm “Tiếp tục tất cả” ở trang Giao hàng.' },
  DELIVERIES_FAILING: { message: 'Nhiều lượt giao hàng bị lỗi trong giờ qua.', action: 'Mở Giao hàng → Thất bại, đọc lý do, sửa nguyên nhân rồi bấm “Thử lại tất cả”.' },
  DISK_LOW: { message: 'Ổ đĩa chứa dữ liệu driveship sắp đầy.', action: 'Hãy giải phóng dung lượng: khi ổ đầy, việc tải về sẽ tạm dừng.' },
  WEBHOOK_SILENT: { message: 'Thông báo thanh toán của SePay không đến được: các khoản tiền chỉ được tìm thấy nhờ lần kiểm tra định kỳ.', action: 'Kiểm tra đường hầm còn hoạt động và địa chỉ webhook trong SePay đúng với địa chỉ trong Cài đặt.' },
  TUNNEL_DOWN: { message: 'SePay không gọi đến được cửa hàng: địa chỉ công khai không phản hồi.', action: 'Kiểm tra đường hầm trong Cài đặt. Khoản tiền vẫn được tìm thấy nhờ kiểm tra định kỳ, nhưng chậm hơn.' },
  WORKERS_STUCK: { message: 'Việc truyền tệp bị kẹt nhiều lần trong giờ qua và đã được khởi động lại.', action: 'Việc truyền sẽ tự tiếp tục; nếu lặp lại nhiều, hãy gửi gói chẩn đoán cho bộ phận hỗ trợ.' },
  WATCHDOG_REPEATED: { message: 'Việc truyền tệp liên tục bị kẹt và đang được khởi động lại.', action: 'Kiểm tra kết nối Internet và nguồn tệp của sản phẩm.' },
  SECRETS_NEED_REENTRY: { message: 'Cần nhập lại một số khóa, mật khẩu đã lưu trong Cài đặt.', action: 'Mở Cài đặt: các ô cần nhập lại đã được đánh dấu.' },
  SECRETS_LOCKED: { message: 'Máy này không mở được các khóa, mật khẩu đã lưu trong Cài đặt.', action: 'Mở driveship theo cách đã cài đặt (ứng dụng trên máy), hoặc nhập lại chúng trong Cài đặt.' },
  SECRETS_IN_OLD_BACKUPS: { message: 'Các bản sao lưu do phiên bản driveship cũ tạo vẫn chứa khóa, mật khẩu ở dạng chữ thường.', action: 'Xoá các bản sao lưu cũ trong thư mục dữ liệu khi đã có bản mới hơn.' },
  JOB_FAILING: { message: 'Một tác vụ định kỳ liên tục bị lỗi.', action: 'Mở Hỗ trợ → Tác vụ định kỳ để xem tác vụ nào và vì sao; chạy lại khi đã sửa nguyên nhân.' },
};

export const ALERT_TEXTS: Record<AlertLang, Record<string, AlertText>> = { en, vi };

/** The text for an alert code (`JOB_FAILING:<job>` reads as JOB_FAILING), else the one it was raised with. */
export function alertText(code: string, lang: AlertLang, raised: { message: string; action?: string | null }): AlertText {
  const known = ALERT_TEXTS[lang][code] ?? ALERT_TEXTS[lang][code.split(':')[0]!];
  return known ?? { message: raised.message, action: raised.action ?? '' };
}
