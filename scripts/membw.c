// Memory read bandwidth probe for docs/performance.md ("Guided decoding against llama.cpp"):
// gcc -O3 -march=native -fopenmp scripts/membw.c -o /tmp/membw && /tmp/membw (needs AVX).
// Memory read bandwidth: sum a 1 GiB float array with T threads, best of 5 passes.
#include <stdio.h>
#include <stdlib.h>
#include <omp.h>
#include <immintrin.h>
int main(int argc,char**argv){
  size_t n = (size_t)1<<28; // 1 GiB of f32
  float *a = aligned_alloc(64, n*sizeof(float));
  #pragma omp parallel for
  for(size_t i=0;i<n;i++) a[i]=(float)(i&1023);
  int threads[2]={1,2};
  for(int ti=0;ti<2;ti++){
    int t=threads[ti]; double best=0; float sink=0;
    for(int rep=0;rep<5;rep++){
      double t0=omp_get_wtime(); float total=0;
      #pragma omp parallel num_threads(t) reduction(+:total)
      {
        __m256 s0=_mm256_setzero_ps(),s1=s0,s2=s0,s3=s0;
        #pragma omp for schedule(static)
        for(size_t i=0;i<n;i+=32){
          s0=_mm256_add_ps(s0,_mm256_load_ps(a+i));
          s1=_mm256_add_ps(s1,_mm256_load_ps(a+i+8));
          s2=_mm256_add_ps(s2,_mm256_load_ps(a+i+16));
          s3=_mm256_add_ps(s3,_mm256_load_ps(a+i+24));
        }
        float b[8]; _mm256_storeu_ps(b,_mm256_add_ps(_mm256_add_ps(s0,s1),_mm256_add_ps(s2,s3)));
        for(int k=0;k<8;k++) total+=b[k];
      }
      double dt=omp_get_wtime()-t0; double gbs=n*4.0/dt/1e9; if(gbs>best)best=gbs; sink+=total;
    }
    printf("threads %d: best read bandwidth %.1f GB/s (sink %g)\n",t,best,sink);
  }
  // Working set that fits L3 (16 MB): repeated passes.
  for(int ti=0;ti<2;ti++){
    int t=threads[ti]; size_t m=(size_t)4<<20; double best=0; float sink=0;
    for(int rep=0;rep<50;rep++){
      double t0=omp_get_wtime(); float total=0;
      #pragma omp parallel num_threads(t) reduction(+:total)
      {
        __m256 s0=_mm256_setzero_ps(),s1=s0;
        #pragma omp for schedule(static)
        for(size_t i=0;i<m;i+=16){ s0=_mm256_add_ps(s0,_mm256_load_ps(a+i)); s1=_mm256_add_ps(s1,_mm256_load_ps(a+i+8)); }
        float b[8]; _mm256_storeu_ps(b,_mm256_add_ps(s0,s1)); for(int k=0;k<8;k++) total+=b[k];
      }
      double dt=omp_get_wtime()-t0; double gbs=m*4.0/dt/1e9; if(gbs>best)best=gbs; sink+=total;
    }
    printf("threads %d: 16 MB (L3-resident) read %.1f GB/s (sink %g)\n",t,best,sink);
  }
}
