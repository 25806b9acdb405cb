package sources

import "errors"

// FatalError is an error after which retrying cannot help: the relay stops
// and the process exits non-zero with its message.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// Fatal wraps err in a *FatalError.
func Fatal(err error) error {
	if err == nil {
		return nil
	}
	return &FatalError{Err: err}
}

// IsFatal reports whether err is, or wraps, a *FatalError.
func IsFatal(err error) bool {
	var fatal *FatalError
	return errors.As(err, &fatal)
}
