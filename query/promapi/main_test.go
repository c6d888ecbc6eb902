package promapi

import (
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Keep gin's debug route listing out of test output; production sets the mode once in
	// the composition root (or via GIN_MODE).
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}
