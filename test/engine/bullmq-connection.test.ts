// How a Redis address becomes connection options: TLS for rediss://, the password from the
// environment over the URL's, a private CA, refusals with a reason; the job id escaping BullMQ needs.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { jobIdOf, transferIdOf } from '../../main/core/remote-protocol';
import { redactRedisUrl, redisOptions, redisTargetFromEnv, RedisUrlError, urlHasPassword } from '../../main/engine/bullmq-connection';
import { bullPriority } from '../../main/engine/bullmq-queue';

describe('Redis connection options', () => {
  it('redis:// with host, port, db and user; workers wait for reconnects instead of failing commands', () => {
    const o = redisOptions({ url: 'redis://shop@10.0.0.5:6380/3' });
    assert.equal(o.host, '10.0.0.5');
    assert.equal(o.port, 6380);
    assert.equal(o.db, 3);
    assert.equal(o.username, 'shop');
    assert.equal(o.password, undefined);
    assert.equal(o.tls, undefined);
    assert.equal(o.maxRetriesPerRequest, null);
    assert.equal(typeof o.retryStrategy, 'function');
    assert.ok((o.retryStrategy as (n: number) => number)(100) <= 2_000, 'reconnects at most every 2 s, for ever');
    assert.equal(redisOptions({ url: 'redis://[::1]' }).host, '::1');
    assert.equal(redisOptions({ url: 'redis://r.example' }).port, 6379);
  });

  it('rediss:// turns TLS on, checks the host name (or the one given), and reads a private CA', () => {
    const dir = mkdtempSync(join(tmpdir(), 'driveship-ca-'));
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const plain = redisOptions({ url: 'rediss://redis.example.com:6380' });
    assert.deepEqual(plain.tls, { servername: 'redis.example.com' });
    const withCa = redisOptions({ url: 'rediss://10.1.2.3:6380', tlsCaFile: ca, tlsServername: 'redis.internal' });
    assert.equal((withCa.tls as { servername: string }).servername, 'redis.internal');
    assert.match(String((withCa.tls as { ca: Buffer }).ca), /BEGIN CERTIFICATE/);
  });

  it('the password: DRIVESHIP_REDIS_PASSWORD wins over one in the URL; both reach the options, neither a redacted URL', () => {
    const env = { DRIVESHIP_REDIS_URL: 'redis://:fromUrl%40x@127.0.0.1:7000', DRIVESHIP_REDIS_PASSWORD: 'fromEnv' };
    assert.equal(redisOptions(redisTargetFromEnv(env)!).password, 'fromEnv');
    assert.equal(redisOptions(redisTargetFromEnv({ DRIVESHIP_REDIS_URL: env.DRIVESHIP_REDIS_URL })!).password, 'fromUrl@x');
    assert.equal(redisOptions(redisTargetFromEnv({ DRIVESHIP_REDIS_PASSWORD: 'p' }, 'redis://h:1')!).password, 'p', 'the --redis address takes the password from the environment');
    assert.equal(redisTargetFromEnv({}), null);
    assert.ok(urlHasPassword(env.DRIVESHIP_REDIS_URL));
    assert.ok(!urlHasPassword('redis://user@h:1'));
    assert.equal(redactRedisUrl(env.DRIVESHIP_REDIS_URL), 'redis://127.0.0.1:7000');
    assert.equal(redactRedisUrl('rediss://u:p@h:6380/2'), 'rediss://h:6380/2');
  });

  it('refuses what is not a Redis address, with the reason', () => {
    assert.throws(() => redisOptions({ url: 'http://127.0.0.1:6379' }), (e: Error) => e instanceof RedisUrlError && /redis:\/\/ or rediss:\/\//.test(e.message));
    assert.throws(() => redisOptions({ url: 'not a url' }), RedisUrlError);
    assert.throws(() => redisOptions({ url: 'redis://h:1/99' }), /database/);
  });

  it('job ids are the transfer ids, escaped for BullMQ (no ":"), reversibly; priorities keep VIP first', () => {
    for (const id of ['fetch:prd_1:2:dir/a:b%3A.mp4', 'upload:prd_x:10:Bài 1.mp4', 'fetch:p:1:%25%']) {
      const j = jobIdOf(id);
      assert.ok(!j.includes(':'));
      assert.equal(transferIdOf(j), id);
    }
    assert.equal(transferIdOf('123'), null);
    assert.ok(bullPriority(1) < bullPriority(0), 'BullMQ runs lower numbers first');
    assert.ok(bullPriority(-1e9) <= 2_000_000 && bullPriority(1e9) >= 1);
  });
});
