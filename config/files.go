package config

import "os"

func fileReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return unwrapPath(err)
	}
	return f.Close()
}
