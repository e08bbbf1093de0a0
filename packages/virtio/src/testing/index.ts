// @ringzero/virtio/testing: a driver-side mock for testing devices without a guest.

export { NinePTestClient, RlerrorReply } from "../9p/testing.js";
export {
  type AddOptions,
  MOCK_RAM_BASE,
  MockDriver,
  type MockDriverOptions,
  MockGuestRam,
  MockQueue,
  type MockUsed,
  mockDriver,
  settle,
} from "./driver.js";
