// The child partition's VP Worker: hypervisor-micro's runVpThread; it imports
// the paravisor module CreateVp names (micro-paravisor.js).
import { runVpThread, webThreadSelf } from "@ringzero/hypervisor-micro";

await runVpThread(await webThreadSelf());
