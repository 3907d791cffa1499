"""App options and config files: declared, converted, validated, read."""
