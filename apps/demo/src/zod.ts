// zod/mini, as the packages use it (their src/zod.ts): `ringzero run` loads zod's functional
// API only (classic zod, ~105 modules, stays with `compare`); the English messages classic zod
// loads on import are set here unless the application chose a locale, so issues read as before.
// Schema files import `* as z` from here and use it only as `z.name`, so a bundler keeps only
// what they use.
import { en } from "zod/locales";
import { config } from "zod/mini";

if (!config().localeError) config(en());

export * from "zod/mini";
