// Must be the first import of the app. Zod compiles fast parsers with `new Function` unless told
// not to; under our CSP (no 'unsafe-eval') even its probe logs a violation in the console.
// Object schemas read this flag when they are constructed, so it has to be set before the
// contract module (which builds schemas at load time) is evaluated.
import { z } from 'zod';

z.config({ jitless: true });
