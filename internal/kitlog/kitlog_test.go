package kitlog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLevelsMessageAndKeys(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	require.NoError(t, l.Log("level", "debug", "msg", "hidden"))
	require.NoError(t, l.Log("level", "warn", "msg", "joined", "peer", "a:1", "n", 3))
	var ev map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &ev), "one line only: debug is below the level")
	require.Equal(t, "WARN", ev["level"])
	require.Equal(t, "joined", ev["msg"])
	require.Equal(t, "a:1", ev["peer"])
	require.EqualValues(t, 3, ev["n"])
}
