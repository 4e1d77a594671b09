package ingest

func runChild() bool { return false }
