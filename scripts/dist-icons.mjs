// Draws driveship's icons with plain Node (no image libraries): the 512 px app icon and the tray
// icons for idle / working / needs attention at 16 px and 32 px (@2x). The PNGs are committed;
// run `node scripts/dist-icons.mjs` again only to change the artwork. Output is deterministic.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = join(root, 'build');

// ---- PNG encoding (RGBA, 8 bits per channel, no interlace) ------------------------------------
const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

function encodePng(width, height, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // colour type: RGBA
  const raw = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (width * 4 + 1) + 1, y * width * 4, (y + 1) * width * 4);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// ---- drawing with signed distances (units: fractions of the icon's side) ------------------------
function segmentDistance(px, py, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

const capsule = (ax, ay, bx, by, r) => (x, y) => segmentDistance(x, y, ax, ay, bx, by) - r;
const circle = (cx, cy, r) => (x, y) => Math.hypot(x - cx, y - cy) - r;
const union = (...shapes) => (x, y) => Math.min(...shapes.map((s) => s(x, y)));
function roundedSquare(x0, y0, x1, y1, r) {
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const hx = (x1 - x0) / 2 - r;
  const hy = (y1 - y0) / 2 - r;
  return (x, y) => {
    const qx = Math.abs(x - cx) - hx;
    const qy = Math.abs(y - cy) - hy;
    return Math.hypot(Math.max(qx, 0), Math.max(qy, 0)) + Math.min(Math.max(qx, qy), 0) - r;
  };
}

/** The mark: an arrow coming down into a tray ("delivered into your Drive"). */
function mark(scale, cx, cy, stroke) {
  const p = (x, y) => [cx + (x - 0.5) * scale, cy + (y - 0.5) * scale];
  const seg = (a, b) => capsule(...p(...a), ...p(...b), stroke);
  return union(
    seg([0.5, 0.14], [0.5, 0.58]),
    seg([0.31, 0.41], [0.5, 0.6]),
    seg([0.69, 0.41], [0.5, 0.6]),
    seg([0.16, 0.58], [0.16, 0.82]),
    seg([0.16, 0.82], [0.84, 0.82]),
    seg([0.84, 0.82], [0.84, 0.58]),
  );
}

function hex(c) {
  return [parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16), parseInt(c.slice(5, 7), 16)];
}

/** Paints layers ({ shape, color }) back to front with one pixel of anti-aliasing. */
function render(size, layers) {
  const out = Buffer.alloc(size * size * 4);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      const x = (px + 0.5) / size;
      const y = (py + 0.5) / size;
      let r = 0, g = 0, b = 0, a = 0;
      for (const { shape, color } of layers) {
        const coverage = Math.max(0, Math.min(1, 0.5 - shape(x, y) * size));
        if (coverage === 0) continue;
        const [cr, cg, cb] = hex(color);
        const na = coverage + a * (1 - coverage);
        r = (cr * coverage + r * a * (1 - coverage)) / na;
        g = (cg * coverage + g * a * (1 - coverage)) / na;
        b = (cb * coverage + b * a * (1 - coverage)) / na;
        a = na;
      }
      const i = (py * size + px) * 4;
      out[i] = Math.round(r);
      out[i + 1] = Math.round(g);
      out[i + 2] = Math.round(b);
      out[i + 3] = Math.round(a * 255);
    }
  }
  return encodePng(size, size, out);
}

const SLATE = '#64748B';
const BLUE = '#2563EB';
const RED = '#DC2626';
const WHITE = '#FFFFFF';
const TEAL = '#0F766E';

function trayIcon(state, size) {
  // Thicker strokes at 16 px so the mark survives the downscale to a taskbar.
  const stroke = size <= 16 ? 0.07 : 0.055;
  const glyph = mark(0.92, 0.5, 0.5, stroke);
  if (state === 'idle') return render(size, [{ shape: glyph, color: SLATE }]);
  if (state === 'working') return render(size, [{ shape: glyph, color: BLUE }]);
  // Needs attention: the same mark with a red badge, so it differs in shape as well as colour.
  return render(size, [
    { shape: glyph, color: SLATE },
    { shape: circle(0.76, 0.24, 0.25), color: WHITE },
    { shape: circle(0.76, 0.24, 0.19), color: RED },
  ]);
}

function appIcon(size) {
  // macOS draws app icons on an 80 % grid; the same margin reads well on Windows and Linux.
  return render(size, [
    { shape: roundedSquare(0.1, 0.1, 0.9, 0.9, 0.18), color: TEAL },
    { shape: mark(0.5, 0.5, 0.5, 0.032), color: WHITE },
  ]);
}

function write(rel, png) {
  const file = join(buildDir, rel);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, png);
  console.log(`${rel} (${png.length} bytes)`);
}

write('icon.png', appIcon(512));
for (const state of ['idle', 'working', 'attention']) {
  write(`tray/${state}.png`, trayIcon(state, 16));
  write(`tray/${state}@2x.png`, trayIcon(state, 32));
}
