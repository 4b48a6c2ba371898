package zerocopy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	s := <-accepted
	require.NotNil(t, s)
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func testFile(t *testing.T, size int) (*os.File, []byte) {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	name := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(name, data, 0o644))
	f, err := os.Open(name)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f, data
}

func TestSendFileRanges(t *testing.T) {
	f, data := testFile(t, 3<<20)
	src, err := f.SyscallConn()
	require.NoError(t, err)
	client, server := pair(t)
	// Several ranges from several goroutines, each on its own connection
	// would be clearer, but one connection in order also checks offsets:
	// the shared file offset must not move.
	ranges := [][2]int64{{0, 10}, {1 << 20, 2 << 20}, {5, 1}, {3<<20 - 100, 100}}
	var want []byte
	for _, r := range ranges {
		want = append(want, data[r[0]:r[0]+r[1]]...)
	}
	done := make(chan []byte)
	go func() {
		got := make([]byte, len(want))
		_, err := io.ReadFull(server, got)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	for _, r := range ranges {
		n, handled, err := SendFile(client, src, r[0], r[1])
		require.NoError(t, err)
		if runtime.GOOS == "linux" {
			require.True(t, handled)
		}
		if !handled {
			_, err = client.Write(data[r[0] : r[0]+r[1]])
			require.NoError(t, err)
			continue
		}
		require.Equal(t, r[1], n)
	}
	require.True(t, bytes.Equal(want, <-done))
	pos, err := f.Seek(0, io.SeekCurrent)
	require.NoError(t, err)
	require.Zero(t, pos, "the file's shared offset did not move")
}

func TestSendFileConcurrent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("zero-copy is Linux only; elsewhere SendFile declines")
	}
	f, data := testFile(t, 1<<20)
	src, err := f.SyscallConn()
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		client, server := pair(t)
		off := int64(g * 100_000)
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _, err := SendFile(client, src, off, 500_000)
			if err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			got := make([]byte, 500_000)
			if _, err := io.ReadFull(server, got); err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(got, data[off:off+500_000]) {
				t.Errorf("goroutine %d got the wrong bytes", g)
			}
		}()
	}
	wg.Wait()
}

func TestSendFileDeclines(t *testing.T) {
	f, _ := testFile(t, 100)
	src, err := f.SyscallConn()
	require.NoError(t, err)
	var buf bytes.Buffer
	_, handled, err := SendFile(bufio.NewWriter(&buf), src, 0, 10)
	require.NoError(t, err)
	require.False(t, handled, "not a socket: the caller copies")
	client, _ := pair(t)
	_, handled, err = SendFile(client, src, 0, 0)
	require.NoError(t, err)
	require.False(t, handled)
}

func TestSendFileShortFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("zero-copy is Linux only")
	}
	f, _ := testFile(t, 100)
	src, err := f.SyscallConn()
	require.NoError(t, err)
	client, server := pair(t)
	go io.Copy(io.Discard, server)
	n, handled, err := SendFile(client, src, 50, 100)
	require.True(t, handled)
	require.Equal(t, int64(50), n)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
}
