from harewatch.cli import main

main(prog_name="harewatch")
