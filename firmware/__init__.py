"""The C sources edgefold compiles into firmware, shipped as package data of `edgefold.firmware`:
runtime/ (the micro runtime's kernels), harness/ (the on-device benchmark), boards/ (per-board ports and the
QEMU twin's startup and linker script), tflm/ (TensorFlow Lite Micro glue). Find them with
`edgefold.core.resources.firmware_dir()`."""
