// Command cdcrelay streams database changes into Kafka, exactly once.
//
// Invariant: main parses the subcommand and calls its run function; os.Exit
// happens only in main, and each subcommand lives in its own file and
// registers itself in an init function.
package main
