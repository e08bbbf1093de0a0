// zod/mini: the functional API of zod 4 (a few KB in a browser bundle, where
// the classic API adds ~440 KB). zod/mini loads no messages; the English ones
// classic zod loads on import are set here unless the application chose a
// locale, so issues read as before ("Too small: expected number to be >=1").
// Schema files import `* as z` from here and use it only as `z.name`, so a
// bundler keeps only what they use.
import { en } from "zod/locales";
import { config } from "zod/mini";

if (!config().localeError) config(en());

export * from "zod/mini";
