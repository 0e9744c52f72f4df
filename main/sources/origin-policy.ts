// The origin policy: the one choke point for every outgoing fetch of product data (manifests,
// files, every redirect hop). Product URLs come from the owner's manifests and from whoever
// answers them with a redirect, so they are untrusted: without this, a manifest line or a
// `302 Location:` reaches the admin API, a cloud metadata service or the owner's router, and the
// answer is uploaded to a customer's Drive.
//
// Two checks, one rule:
//  - `checkUrl` / `vetUrl` before anything is fetched (and when a product is saved): scheme,
//    literal addresses, well-known names, and (vetUrl) what the name resolves to;
//  - `originAgent`'s connector at every connection, redirects included: it resolves the name
//    itself, vets every address, and connects to the vetted address, so DNS cannot answer one
//    address to the check and another to the connect (rebinding).
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Agent, buildConnector, interceptors, type Dispatcher } from 'undici';

export interface OriginRules {
  /** Loopback origins (127/8, ::1, localhost): only with DRIVESHIP_ALLOW_PRIVATE_ORIGINS=1. */
  allowLoopback: boolean;
  /** Private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7): the host allowance or the product's flag. */
  allowPrivate: boolean;
  /** Ports of this host's own listeners (admin, webhook): refused on every local address, always. */
  ownPorts: number[];
  /**
   * Fixed answers consulted before DNS, like a hosts file. Only tests set it (through the core's
   * options, never from outside), so that "a name resolving to loopback" needs no real DNS.
   */
  hosts?: Record<string, string[]>;
}

/** Nothing private, nothing local: what a task or source gets when nobody said otherwise. */
export const STRICT_ORIGIN_RULES: OriginRules = Object.freeze({ allowLoopback: false, allowPrivate: false, ownPorts: [] }) as OriginRules;

export const ALLOW_PRIVATE_ORIGINS_ENV = 'DRIVESHIP_ALLOW_PRIVATE_ORIGINS';

/** The rules for one product: the product's "files are on my local network" adds private ranges only. */
export function rulesForProduct(host: OriginRules, privateNetwork: boolean | undefined): OriginRules {
  return privateNetwork ? { ...host, allowPrivate: true } : host;
}

export type AddressKind =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'metadata'
  | 'unspecified'
  | 'multicast'
  | 'broadcast'
  | 'reserved';

export type RefusalReason = Exclude<AddressKind, 'public'> | 'scheme' | 'credentials' | 'mapped-address' | 'own-listener';

export class OriginRefusedError extends Error {
  override readonly name = 'OriginRefusedError';
  readonly code = 'ORIGIN_REFUSED';
  constructor(readonly url: string, readonly reason: RefusalReason, message: string) {
    super(message);
  }
}

export function isOriginRefused(err: unknown): err is OriginRefusedError {
  return err instanceof OriginRefusedError || (err as { code?: unknown } | null)?.code === 'ORIGIN_REFUSED';
}

/** The refusal inside an undici/fetch error (fetch wraps connector errors as `cause`), if any. */
export function findOriginRefusal(err: unknown): OriginRefusedError | null {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof OriginRefusedError) return e;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Addresses

function parseIPv4(s: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

/** Eight 16-bit groups, or null. Accepts "::", an embedded dotted quad and a zone id. */
function parseIPv6(input: string): number[] | null {
  let s = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (isIP(s) !== 6) return null;
  const lastColon = s.lastIndexOf(':');
  const dotted = s.slice(lastColon + 1);
  if (dotted.includes('.')) {
    const n = parseIPv4(dotted);
    if (n === null) return null;
    s = `${s.slice(0, lastColon + 1)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const halves = s.split('::');
  const toGroups = (h: string) => (h === '' ? [] : h.split(':').map((g) => parseInt(g, 16)));
  const head = toGroups(halves[0]!);
  const rest = halves.length > 1 ? toGroups(halves[1]!) : [];
  const missing = 8 - head.length - rest.length;
  const groups = halves.length > 1 ? [...head, ...Array(Math.max(0, missing)).fill(0), ...rest] : head;
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}

const v4 = (a: string, bits: number): [number, number] => {
  const n = parseIPv4(a)!;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return [(n & mask) >>> 0, mask];
};

// Order matters: the first match wins (the metadata address is inside link-local).
const V4_RANGES: [[number, number], AddressKind][] = [
  [v4('169.254.169.254', 32), 'metadata'], // AWS, GCP, Azure, OpenStack, DigitalOcean...
  [v4('169.254.170.2', 32), 'metadata'], // AWS ECS task credentials
  [v4('100.100.100.200', 32), 'metadata'], // Alibaba Cloud
  [v4('192.0.0.192', 32), 'metadata'], // Oracle Cloud
  [v4('168.63.129.16', 32), 'metadata'], // Azure wire server
  [v4('0.0.0.0', 8), 'unspecified'],
  [v4('127.0.0.0', 8), 'loopback'],
  [v4('10.0.0.0', 8), 'private'],
  [v4('172.16.0.0', 12), 'private'],
  [v4('192.168.0.0', 16), 'private'],
  [v4('100.64.0.0', 10), 'private'], // carrier-grade NAT: someone's local network, not the internet
  [v4('169.254.0.0', 16), 'link-local'],
  [v4('192.0.0.0', 24), 'reserved'],
  [v4('192.0.2.0', 24), 'reserved'],
  [v4('198.18.0.0', 15), 'reserved'],
  [v4('198.51.100.0', 24), 'reserved'],
  [v4('203.0.113.0', 24), 'reserved'],
  [v4('255.255.255.255', 32), 'broadcast'],
  [v4('224.0.0.0', 4), 'multicast'],
  [v4('240.0.0.0', 4), 'reserved'],
];

function classifyV4(n: number): AddressKind {
  for (const [[net, mask], kind] of V4_RANGES) if (((n & mask) >>> 0) === net) return kind;
  return 'public';
}

function classifyV6(g: number[]): { kind: AddressKind; embedded: number | null } {
  const zeroTo = (n: number) => g.slice(0, n).every((x) => x === 0);
  const embedded = (((g[6]! << 16) >>> 0) + g[7]!) >>> 0;
  if (zeroTo(8)) return { kind: 'unspecified', embedded: null };
  if (zeroTo(7) && g[7] === 1) return { kind: 'loopback', embedded: null };
  // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible), 64:ff9b::a.b.c.d (NAT64): the IPv4 decides.
  if (zeroTo(5) && g[5] === 0xffff) return { kind: classifyV4(embedded), embedded };
  if (zeroTo(6)) return { kind: classifyV4(embedded), embedded };
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return { kind: classifyV4(embedded), embedded };
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) return { kind: 'private', embedded: null }; // local-use NAT64
  if (g[0] === 0x2002) {
    const inner = (((g[1]! << 16) >>> 0) + g[2]!) >>> 0; // 6to4 carries an IPv4 in bits 16-47
    return { kind: classifyV4(inner), embedded: inner };
  }
  if (g[0] === 0xfd00 && g[1] === 0x0ec2 && g.slice(2, 7).every((x) => x === 0) && g[7] === 0x254) return { kind: 'metadata', embedded: null }; // AWS IMDS over IPv6
  if ((g[0]! & 0xfe00) === 0xfc00) return { kind: 'private', embedded: null }; // fc00::/7 unique local
  if ((g[0]! & 0xffc0) === 0xfe80) return { kind: 'link-local', embedded: null };
  if ((g[0]! & 0xffc0) === 0xfec0) return { kind: 'private', embedded: null }; // deprecated site-local
  if ((g[0]! & 0xff00) === 0xff00) return { kind: 'multicast', embedded: null };
  if (g[0] === 0x2001 && g[1] === 0) return { kind: 'reserved', embedded: null }; // Teredo hides its IPv4
  if (g[0] === 0x2001 && g[1] === 0x0db8) return { kind: 'reserved', embedded: null }; // documentation
  if (g[0] === 0x0100 && zeroTo(4)) return { kind: 'reserved', embedded: null }; // discard
  if ((g[0]! & 0xe000) !== 0x2000) return { kind: 'reserved', embedded: null }; // outside global unicast
  return { kind: 'public', embedded: null };
}

/** What kind of address `ip` is (an IPv4 or IPv6 literal, brackets allowed); null when it is none. */
export function classifyAddress(ip: string): AddressKind | null {
  const n = parseIPv4(ip);
  if (n !== null) return classifyV4(n);
  const g = parseIPv6(ip);
  return g ? classifyV6(g).kind : null;
}

/** True for IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4). */
function embedsIPv4(ip: string): boolean {
  const g = parseIPv6(ip);
  return !!g && classifyV6(g).embedded !== null;
}

/** One spelling per address: IPv4 and its mapped/compatible IPv6 forms share one key. */
function addressKey(ip: string): string | null {
  const bare = ip.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const n = parseIPv4(bare);
  if (n !== null) return `4:${n}`;
  const g = parseIPv6(bare);
  if (!g) return null;
  const mapped = g.slice(0, 5).every((x) => x === 0) && (g[5] === 0xffff || g[5] === 0);
  return mapped ? `4:${(((g[6]! << 16) >>> 0) + g[7]!) >>> 0}` : `6:${g.join(':')}`;
}

/** This machine's own addresses (every interface), so "own listener" covers 0.0.0.0 binds too. */
function isLocalAddress(ip: string, kind: AddressKind): boolean {
  if (kind === 'loopback' || kind === 'unspecified') return true;
  const key = addressKey(ip);
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (addressKey(a.address) === key) return true;
  }
  return false;
}

const HINT =
  `set ${ALLOW_PRIVATE_ORIGINS_ENV}=1 in the environment to allow loopback and private origins on this whole host (for a sandbox or a test)`;

const WHY: Record<Exclude<AddressKind, 'public'>, string> = {
  loopback: 'a loopback address (this machine)',
  private: 'a private network address',
  'link-local': 'a link-local address',
  metadata: 'a cloud metadata service',
  unspecified: 'the unspecified address (this machine)',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  reserved: 'a reserved address that is not on the internet',
};

function defaultPort(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

/** Refuses one address for `url`; returns nothing when it may be fetched. */
function checkAddress(url: URL, ip: string, port: number, rules: OriginRules, via: string | null): void {
  const kind = classifyAddress(ip);
  const shown = via ? `${via} resolves to ${ip}, which is` : `${ip} is`;
  if (kind === null) throw new OriginRefusedError(url.href, 'reserved', `${url.href} is refused: "${ip}" is not an address`);
  if (rules.ownPorts.includes(port) && isLocalAddress(ip, kind)) {
    throw new OriginRefusedError(url.href, 'own-listener', `${url.href} is refused: ${shown} this shop's own listener (port ${port}); product files never come from driveship itself`);
  }
  if (kind === 'public') return;
  if (kind === 'loopback' && rules.allowLoopback) return;
  if (kind === 'private' && rules.allowPrivate) return;
  const hint =
    kind === 'private'
      ? `; if the files really are on your local network, tick "the files are on my local network" on the product, or ${HINT}`
      : kind === 'loopback'
        ? `; ${HINT}`
        : '';
  throw new OriginRefusedError(url.href, kind, `${url.href} is refused: ${shown} ${WHY[kind]}${hint}`);
}

// Cloud metadata services by name (they also answer on the addresses above).
const METADATA_NAMES = new Set([
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'metadata.azure.internal',
  'instance-data',
  'instance-data.ec2.internal',
  'metadata.tencentyun.com',
  'metadata.platformequinix.com',
]);

/** Lower case, no trailing dots: "Metadata.Google.Internal." and "metadata.google.internal" are one name. */
function normaliseName(hostname: string): string {
  return hostname.toLowerCase().replace(/\.+$/, '');
}

/**
 * The URL parsed and checked without resolving anything: scheme, credentials, literal addresses
 * (every numeric form: the WHATWG parser has already turned 2130706433, 0x7f.1, 017700000001 and
 * 127.1 into 127.0.0.1), IPv4-mapped IPv6 literals, localhost and metadata names.
 */
export function checkUrl(raw: string | URL, rules: OriginRules, base?: URL): URL {
  let url: URL;
  try {
    url = raw instanceof URL ? new URL(raw.href) : new URL(raw, base);
  } catch {
    throw new OriginRefusedError(String(raw), 'scheme', `${String(raw)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new OriginRefusedError(url.href, 'scheme', `${url.href} is refused: only http and https URLs are fetched`);
  }
  if (url.username || url.password) {
    throw new OriginRefusedError(url.href, 'credentials', `${url.href.replace(/\/\/[^@/]*@/, '//***@')} is refused: a URL must not carry a user name or password (use a presigned link)`);
  }
  const host = url.hostname;
  const port = defaultPort(url);
  if (host.startsWith('[')) {
    // An IPv4 address written as IPv6 is a classic way round address checks: no origin needs it.
    if (embedsIPv4(host) && !/^\[64:ff9b::/i.test(host)) {
      throw new OriginRefusedError(url.href, 'mapped-address', `${url.href} is refused: an IPv4 address written as IPv6 (${host}); write the IPv4 address itself`);
    }
    checkAddress(url, host, port, rules, null);
    return url;
  }
  if (parseIPv4(host) !== null) {
    checkAddress(url, host, port, rules, null);
    return url;
  }
  const name = normaliseName(host);
  if (METADATA_NAMES.has(name)) throw new OriginRefusedError(url.href, 'metadata', `${url.href} is refused: ${name} is a cloud metadata service`);
  if (name === 'localhost' || name.endsWith('.localhost')) {
    for (const ip of ['127.0.0.1', '::1']) checkAddress(url, ip, port, rules, name);
  }
  const fixed = rules.hosts?.[name];
  if (fixed) for (const ip of fixed) checkAddress(url, ip, port, rules, name);
  return url;
}

export type Lookup = (hostname: string) => Promise<string[]>;

const systemLookup: Lookup = async (hostname) => (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

/**
 * The addresses a connection to `hostname` may use, each one vetted. A name is refused when any
 * of its addresses is: picking the good one would let the next lookup pick the bad one.
 */
export async function resolveVetted(url: URL, rules: OriginRules, lookup: Lookup = systemLookup): Promise<string[]> {
  const host = url.hostname;
  const port = defaultPort(url);
  if (host.startsWith('[') || parseIPv4(host) !== null) {
    checkAddress(url, host, port, rules, null);
    return [host.replace(/^\[|\]$/g, '')];
  }
  const name = normaliseName(host);
  if (METADATA_NAMES.has(name)) throw new OriginRefusedError(url.href, 'metadata', `${url.href} is refused: ${name} is a cloud metadata service`);
  // RFC 6761: localhost is this machine whatever DNS says.
  const addresses = name === 'localhost' || name.endsWith('.localhost') ? ['127.0.0.1', '::1'] : (rules.hosts?.[name] ?? (await lookup(name)));
  if (!addresses.length) throw Object.assign(new Error(`${name} has no address`), { code: 'ENOTFOUND' });
  for (const ip of addresses) checkAddress(url, ip, port, rules, name);
  return addresses;
}

/** checkUrl, then the name resolved and every address vetted (product save, manifest fetch). */
export async function vetUrl(raw: string | URL, rules: OriginRules, lookup?: Lookup): Promise<URL> {
  const url = checkUrl(raw, rules);
  await resolveVetted(url, rules, lookup);
  return url;
}

// ---------------------------------------------------------------------------------------------
// The connection: pinned to a vetted address

export interface OriginAgentOptions {
  connectTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  keepAliveMaxTimeoutMs?: number;
  lookup?: Lookup;
  /** Follow up to this many redirects (every hop's connection is vetted by the same connector). */
  maxRedirections?: number;
}

/**
 * An undici Agent whose every connection (first request and every redirect hop alike) resolves
 * the name itself, vets each address and connects to the vetted one. TLS still verifies the
 * certificate for the name (servername), and the Host header is the URL's.
 */
export function originAgent(rules: OriginRules, opts: OriginAgentOptions = {}): Agent {
  const base = buildConnector({ timeout: opts.connectTimeoutMs ?? 15_000 });
  const connect: buildConnector.connector = (options, callback) => {
    const hostname = options.hostname;
    const url = new URL(`${options.protocol}//${hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname}${options.port ? `:${options.port}` : ''}/`);
    let addresses: string[];
    const attempt = (i: number, lastErr: Error | null): void => {
      if (i >= addresses.length) {
        callback(lastErr ?? new Error(`cannot connect to ${hostname}`), null);
        return;
      }
      const servername = options.servername || (isIP(hostname.replace(/^\[|\]$/g, '')) ? undefined : normaliseName(hostname));
      base({ ...options, hostname: addresses[i]!, servername }, (err, socket) => {
        if (err) attempt(i + 1, err);
        else callback(null, socket!);
      });
    };
    Promise.resolve()
      .then(() => {
        checkUrl(url, rules);
        return resolveVetted(url, rules, opts.lookup);
      })
      .then((vetted) => {
        addresses = vetted;
        attempt(0, null);
      }, (err: Error) => callback(err, null));
  };
  return new Agent({
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 10_000,
    keepAliveMaxTimeout: opts.keepAliveMaxTimeoutMs ?? 60_000,
    connect,
  });
}

/** One agent per set of rules, reused (a keep-alive pool is worth keeping between tasks). */
export function agentCache(opts: OriginAgentOptions = {}): (rules: OriginRules) => Dispatcher {
  const agents = new Map<string, { agent: Agent; dispatcher: Dispatcher }>();
  return (rules) => {
    const key = JSON.stringify([rules.allowLoopback, rules.allowPrivate, [...rules.ownPorts].sort(), rules.hosts ?? null]);
    let a = agents.get(key);
    if (!a) {
      // A handful of rule sets exist in practice; a bound keeps a bug from growing this forever.
      if (agents.size >= 32) {
        const [oldestKey, oldest] = agents.entries().next().value as [string, { agent: Agent }];
        agents.delete(oldestKey);
        oldest.agent.close().catch(() => undefined);
      }
      const agent = originAgent(rules, opts);
      const dispatcher = opts.maxRedirections ? agent.compose(interceptors.redirect({ maxRedirections: opts.maxRedirections })) : agent;
      agents.set(key, (a = { agent, dispatcher }));
    }
    return a.dispatcher;
  };
}
