"""One managed slot and its children: spawn, output, stop, exit, restart."""
