// Origin rules for tests that call a source or a transfer task directly: test origins are on
// loopback, which the policy refuses unless allowed (as DRIVESHIP_ALLOW_PRIVATE_ORIGINS=1 does).
import type { OriginRules } from '../../main/sources/origin-policy';

export const TEST_ORIGIN_RULES: OriginRules = { allowLoopback: true, allowPrivate: true, ownPorts: [] };
