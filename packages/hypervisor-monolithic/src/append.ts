// Kernel command lines used when a config gives none.

/** The command line when none is given: the console on the UART, as QEMU users expect. */
export const DEFAULT_APPEND = "console=ttyS0";

/** The command line when none is given and the console is virtio-console. */
export const VIRTIO_CONSOLE_APPEND = "console=hvc1";
