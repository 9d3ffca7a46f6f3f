package server

// KeptTasks returns how many A2A tasks s keeps for tasks/get.
func KeptTasks(s *Server) int {
	n, _ := s.tasks.len()
	return n
}
