"""``python -m repro.plan cost [--tier TIER ...] [--fraction F] [--gpu-tflops T] [--json]``: what a tier costs."""
import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] != "cost":
        print("usage: python -m repro.plan cost [--tier TIER ...] [--fraction F] [--gpu-tflops T] [--json]; "
              f"got {' '.join(argv) or 'no command'!r}; allowed commands: cost", file=sys.stderr)
        return 2
    from .hours import main as cost_main

    return cost_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
